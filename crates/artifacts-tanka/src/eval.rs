//! The builtin engine: one environment's `main.jsonnet` evaluated in-process
//! with jrsonnet, as tanka evaluates a static environment.
//!
//! Import paths (tanka's precedence): the importing file's directory, the
//! environment directory, `lib/`, `<env>/vendor/`, `vendor/`, confined to the
//! project root ([`crate::import`]). Natives: [`crate::natives`]. Top-level
//! arguments and external variables are strings only. `std.trace` output is
//! collected, redacted, and handed back instead of going to the process's
//! stderr. Each call builds a fresh evaluator state (thread-local to jrsonnet,
//! entered for the duration of the call).

use std::cell::RefCell;
use std::collections::HashMap;
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

/// String arguments for one evaluation.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// `--ext-str` values, by name (later entries win).
    pub ext_str: Vec<(String, String)>,
    /// `--tla-str` values, by name (later entries win); never `secrets_yaml`.
    pub tla_str: Vec<(String, String)>,
}

impl Vars {
    /// Parses `NAME=VALUE` into a pair; `flag` names the flag in errors.
    pub fn parse_pair(flag: &'static str, arg: &str) -> Result<(String, String)> {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(Error::Argument {
                flag,
                value: arg.chars().take(40).collect(),
                reason: "expected NAME=VALUE".into(),
            });
        };
        if name.is_empty() {
            return Err(Error::Argument {
                flag,
                value: String::new(),
                reason: "the name is empty".into(),
            });
        }
        if flag == "--tla-str" && name == SECRETS_TLA {
            return Err(Error::Argument {
                flag,
                value: name.into(),
                reason: "secrets_yaml is bound to the decrypted secrets file".into(),
            });
        }
        Ok((name.to_string(), value.to_string()))
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
/// sorted). `traces` receives `std.trace` lines, redacted.
pub fn evaluate(
    project: &Project,
    env: &Environment,
    secrets_yaml: Option<&str>,
    vars: &Vars,
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
    for (name, value) in &vars.ext_str {
        ctx.add_ext_str(name.as_str().into(), value.as_str().into());
    }
    let mut builder = State::builder();
    builder
        .import_resolver(RootedResolver::new(root.clone(), jpath))
        .context_initializer(ctx);
    let state = builder.build();

    // IStr is an interned handle; its hash and equality never change.
    #[allow(clippy::mutable_key_type)]
    let mut tla: HashMap<IStr, TlaArg> = HashMap::new();
    for (name, value) in &vars.tla_str {
        tla.insert(name.as_str().into(), TlaArg::String(value.as_str().into()));
    }
    if let Some(s) = secrets_yaml {
        tla.insert(SECRETS_TLA.into(), TlaArg::String(s.into()));
    }
    let main = format!("environments/{}/main.jsonnet", env.name());

    let result = {
        let _entered = state.enter();
        state
            .import(main.as_str())
            .and_then(|v| apply_tla(&tla, v))
            .and_then(to_json)
    };
    traces.extend(collected.borrow().iter().map(|t| redactor.redact(t)));
    result.map_err(|e| {
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
