//! The builtin engine: one environment's `main.jsonnet` evaluated in-process
//! with jrsonnet, as tanka evaluates it.
//!
//! Import paths (tanka's precedence): the importing file's directory, the
//! environment directory, `lib/`, `<env>/vendor/`, `vendor/`, confined to the
//! project root ([`crate::import`]); `import 'tk'` is tanka's library.
//! Natives: [`crate::natives`]. Top-level arguments and external variables
//! are strings or code ([`Vars`], tanka's precedence); the ext var
//! `tanka.dev/environment` is the static environment's spec, or tanka's
//! error for inline ones. With `--name`, tanka's selection of inline
//! environments runs on the lazy result. `std.trace` output is
//! collected, redacted, and handed back instead of going to the process's
//! stderr. Each call builds a fresh evaluator state (thread-local to jrsonnet,
//! entered for the duration of the call).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use jrsonnet_evaluator::error::ErrorKind;
use jrsonnet_evaluator::function::CallLocation;
use jrsonnet_evaluator::tla::TlaArg;
use jrsonnet_evaluator::trace::{CompactFormat, PathResolver, TraceFormat};
use jrsonnet_evaluator::{IStr, State, Val, apply_tla, in_description_frame};
use jrsonnet_gcmodule::Acyclic;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::import::RootedResolver;
use crate::project::{Environment, Project};
use crate::redact::Redactor;

/// The top-level argument the decrypted secrets are bound to.
pub const SECRETS_TLA: &str = "secrets_yaml";

/// How a variable's value was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    /// `--ext-str` / `--tla-str`: a string.
    Str(String),
    /// `--ext-code` / `--tla-code`: jsonnet code.
    Code(String),
}

/// External variables and top-level arguments for one evaluation, with
/// tanka's precedence: per name, a `*-str` value beats a `*-code` value
/// whatever their order on the command line, and among values of one kind
/// the last wins.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// External variables, by name.
    pub ext: BTreeMap<String, VarValue>,
    /// Top-level arguments, by name; never `secrets_yaml`.
    pub tla: BTreeMap<String, VarValue>,
}

/// The flags that set variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarFlag {
    /// `--ext-str`.
    ExtStr,
    /// `--ext-code`.
    ExtCode,
    /// `--tla-str`.
    TlaStr,
    /// `--tla-code`.
    TlaCode,
}

impl VarFlag {
    /// The flag as written on the command line.
    pub fn flag(self) -> &'static str {
        match self {
            VarFlag::ExtStr => "--ext-str",
            VarFlag::ExtCode => "--ext-code",
            VarFlag::TlaStr => "--tla-str",
            VarFlag::TlaCode => "--tla-code",
        }
    }
}

impl Vars {
    /// Adds every `NAME=VALUE` of the four flags with tanka's precedence
    /// (codes first, then strings, each in command-line order).
    pub fn from_flags(
        ext_str: &[String],
        ext_code: &[String],
        tla_str: &[String],
        tla_code: &[String],
    ) -> Result<Vars> {
        let mut vars = Vars::default();
        for (flag, args) in [
            (VarFlag::ExtCode, ext_code),
            (VarFlag::ExtStr, ext_str),
            (VarFlag::TlaCode, tla_code),
            (VarFlag::TlaStr, tla_str),
        ] {
            for arg in args {
                vars.set(flag, arg)?;
            }
        }
        Ok(vars)
    }

    /// Sets one `NAME=VALUE` (later calls override earlier ones).
    pub fn set(&mut self, flag: VarFlag, arg: &str) -> Result<()> {
        let (name, value) = Vars::parse_pair(flag, arg)?;
        let (map, value) = match flag {
            VarFlag::ExtStr => (&mut self.ext, VarValue::Str(value)),
            VarFlag::ExtCode => (&mut self.ext, VarValue::Code(value)),
            VarFlag::TlaStr => (&mut self.tla, VarValue::Str(value)),
            VarFlag::TlaCode => (&mut self.tla, VarValue::Code(value)),
        };
        map.insert(name, value);
        Ok(())
    }

    /// Parses `NAME=VALUE` into a pair; `flag` names the flag in errors.
    pub fn parse_pair(flag: VarFlag, arg: &str) -> Result<(String, String)> {
        let flag_name = flag.flag();
        let Some((name, value)) = arg.split_once('=') else {
            return Err(Error::Argument {
                flag: flag_name,
                value: arg.chars().take(40).collect(),
                reason: "expected NAME=VALUE".into(),
            });
        };
        if name.is_empty() {
            return Err(Error::Argument {
                flag: flag_name,
                value: String::new(),
                reason: "the name is empty".into(),
            });
        }
        if matches!(flag, VarFlag::TlaStr | VarFlag::TlaCode) && name == SECRETS_TLA {
            return Err(Error::Argument {
                flag: flag_name,
                value: name.into(),
                reason: "secrets_yaml is bound to the decrypted secrets file and cannot be set on the command line".into(),
            });
        }
        if name == ENVIRONMENT_EXT {
            return Err(Error::Argument {
                flag: flag_name,
                value: name.into(),
                reason: "tanka sets this external variable itself".into(),
            });
        }
        Ok((name.to_string(), value.to_string()))
    }
}

/// The external variable tanka binds to the environment (`tk.env`).
pub const ENVIRONMENT_EXT: &str = "tanka.dev/environment";

/// What tanka binds to [`ENVIRONMENT_EXT`] for inline environments.
const INLINE_ENVIRONMENT_CODE: &str = "error \"Using tk.env and std.extVar('tanka.dev/environment') is only supported for static environments. Directly access this data using standard Jsonnet instead.\"";

/// `import 'tk'`, as tanka provides it from memory.
pub(crate) const TK_LIBSONNET: &str = "\n{\n  env: std.extVar(\"tanka.dev/environment\"),\n}\n";

fn tla_arg(v: &VarValue) -> TlaArg {
    match v {
        VarValue::Str(s) => TlaArg::String(s.as_str().into()),
        VarValue::Code(c) => TlaArg::InlineCode(c.clone()),
    }
}

#[derive(Acyclic)]
struct CollectTraces {
    out: Rc<RefCell<Vec<String>>>,
    resolver: PathResolver,
}

impl jrsonnet_stdlib::TracePrinter for CollectTraces {
    fn print_trace(&self, loc: CallLocation<'_>, value: IStr) {
        let mut line = String::from("TRACE:");
        if let Some(span) = loc.0 {
            let source = &span.0;
            let lines = source.map_source_locations(&[span.1]);
            let file = source.source_path().path().map_or_else(
                || source.source_path().to_string(),
                |p| self.resolver.resolve(p),
            );
            line.push_str(&format!(" {file}:{}", lines[0].line));
        }
        line.push(' ');
        line.push_str(&value);
        self.out.borrow_mut().push(line);
    }
}

/// Evaluates the environment and returns its output as JSON (object keys
/// sorted). `traces` receives `std.trace` lines, redacted. `select`: only
/// the inline environments whose `metadata.name` contains this text are
/// kept, everything else in the output becomes `{}` without being
/// evaluated (tanka's `--name`).
pub fn evaluate(
    project: &Project,
    env: &Environment,
    secrets_yaml: Option<&str>,
    vars: &Vars,
    select: Option<&str>,
    redactor: &Redactor,
    traces: &mut Vec<String>,
) -> Result<Value> {
    let root = project.root().to_path_buf();
    let jpath = vec![
        env.dir().to_path_buf(),
        root.join("lib"),
        env.dir().join("vendor"),
        root.join("vendor"),
    ];
    let collected = Rc::new(RefCell::new(Vec::new()));
    let ctx = jrsonnet_stdlib::ContextInitializer::new(PathResolver::Relative(root.clone()));
    crate::natives::register(&ctx);
    crate::natives::register_tools(&ctx, crate::external::Tools::from_process(root.clone()));
    ctx.settings_mut().trace_printer = Rc::new(CollectTraces {
        out: collected.clone(),
        resolver: PathResolver::Relative(root.clone()),
    });
    for (name, value) in &vars.ext {
        ctx.settings_mut()
            .ext_vars
            .insert(name.as_str().into(), tla_arg(value));
    }
    let environment = match env.spec() {
        Some(spec) => spec.to_json().to_string(),
        None => INLINE_ENVIRONMENT_CODE.to_string(),
    };
    ctx.settings_mut()
        .ext_vars
        .insert(ENVIRONMENT_EXT.into(), TlaArg::InlineCode(environment));
    let mut builder = State::builder();
    builder
        .import_resolver(RootedResolver::new(root.clone(), jpath))
        .context_initializer(ctx);
    let state = builder.build();

    // IStr is an interned handle; its hash and equality never change.
    #[allow(clippy::mutable_key_type)]
    let mut tla: HashMap<IStr, TlaArg> = HashMap::new();
    for (name, value) in &vars.tla {
        tla.insert(name.as_str().into(), tla_arg(value));
    }
    if let Some(s) = secrets_yaml {
        tla.insert(SECRETS_TLA.into(), TlaArg::String(s.into()));
    }
    let main = env.entrypoint();

    let result = {
        let _entered = state.enter();
        state
            .import(main.as_str())
            .and_then(|v| apply_tla(&tla, v))
            .and_then(|v| match select {
                Some(name) => select_environments(v, name),
                None => Ok(v),
            })
            .and_then(to_json)
    };
    traces.extend(collected.borrow().iter().map(|t| redactor.redact(t)));
    result.map_err(|e| {
        // A native refusing what it cannot do exactly (see process::UNSUPPORTED).
        if let ErrorKind::RuntimeError(m) = e.error()
            && let Some(feature) = m.strip_prefix(crate::process::UNSUPPORTED)
        {
            return Error::Unsupported {
                env: env.name().to_string(),
                feature: redactor.redact(feature),
            };
        }
        let format = CompactFormat {
            resolver: PathResolver::Relative(root),
            max_trace: 20,
            padding: 4,
        };
        let text = format.format(&e).unwrap_or_else(|_| e.error().to_string());
        Error::Jsonnet {
            env: env.name().to_string(),
            message: redactor.redact(&text),
        }
    })
}

/// tanka's `--name` selection over the evaluated output (its
/// `SingleEnvEvalScript`): objects with visible `apiVersion` and `kind` are
/// kept when they are an `Environment` whose `metadata.name` contains
/// `name`, else replaced by `{}`; other objects and arrays are walked;
/// everything else becomes `{}`.
fn select_environments(v: Val, name: &str) -> jrsonnet_evaluator::Result<Val> {
    use jrsonnet_evaluator::ObjValueBuilder;
    jrsonnet_evaluator::ensure_sufficient_stack(|| match v {
        Val::Obj(o) => {
            if o.has_field("apiVersion".into()) && o.has_field("kind".into()) {
                let kind = o.get("kind".into())?;
                let is_env = matches!(&kind, Some(Val::Str(s)) if s.clone().into_flat().as_str() == "Environment");
                if !is_env {
                    return Ok(Val::Obj(ObjValueBuilder::new().build()));
                }
                let metadata = o.get("metadata".into())?.ok_or_else(|| {
                    jrsonnet_evaluator::Error::from(ErrorKind::RuntimeError(
                        "field does not exist: metadata".into(),
                    ))
                })?;
                let env_name = match metadata {
                    Val::Obj(m) => m.get("name".into())?.ok_or_else(|| {
                        jrsonnet_evaluator::Error::from(ErrorKind::RuntimeError(
                            "field does not exist: name".into(),
                        ))
                    })?,
                    _ => {
                        return Err(ErrorKind::RuntimeError(
                            "metadata of an Environment is not an object".into(),
                        )
                        .into());
                    }
                };
                let matched = match env_name {
                    Val::Str(s) => s.into_flat().as_str().contains(name),
                    _ => {
                        return Err(ErrorKind::RuntimeError(
                            "metadata.name of an Environment is not a string".into(),
                        )
                        .into());
                    }
                };
                return Ok(if matched {
                    Val::Obj(o)
                } else {
                    Val::Obj(ObjValueBuilder::new().build())
                });
            }
            let mut out = ObjValueBuilder::new();
            for field in o.fields() {
                let value = o.get(field.clone())?.unwrap_or(Val::Null);
                out.field(field).value(select_environments(value, name)?);
            }
            Ok(Val::Obj(out.build()))
        }
        Val::Arr(a) => {
            let mut out = Vec::with_capacity(a.len() as usize);
            for item in a.iter() {
                out.push(select_environments(item?, name)?);
            }
            Ok(Val::Arr(jrsonnet_evaluator::val::ArrValue::new(out)))
        }
        _ => Ok(Val::Obj(ObjValueBuilder::new().build())),
    })
}

fn number(n: f64) -> Value {
    // Integral values print as integers, as every jsonnet implementation does.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// Manifests a value as JSON, forcing every field (assertions included).
pub(crate) fn to_json(v: Val) -> jrsonnet_evaluator::Result<Value> {
    jrsonnet_evaluator::ensure_sufficient_stack(|| {
        Ok(match v {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Str(s) => Value::String(s.into_flat().to_string()),
            Val::Num(n) => number(n.get()),
            Val::Arr(a) => {
                let mut out = Vec::with_capacity(a.len() as usize);
                for (i, item) in a.iter().enumerate() {
                    out.push(in_description_frame(
                        || format!("array index [{i}]"),
                        || to_json(item?),
                    )?);
                }
                Value::Array(out)
            }
            Val::Obj(o) => {
                o.run_assertions()?;
                let mut out = serde_json::Map::new();
                for (name, value) in o.iter() {
                    let v = in_description_frame(
                        || format!("object field {:?}", name.as_str()),
                        || to_json(value?),
                    )?;
                    out.insert(name.to_string(), v);
                }
                Value::Object(out)
            }
            Val::Func(_) => {
                return Err(ErrorKind::RuntimeError("tried to manifest function".into()).into());
            }
        })
    })
}
