//! What `generate` and `regenerate` run: missing, stale, forced or older than
//! a limit; the cascade to dependents; and the guard for secrets that another
//! backend than the declared one stores. Computed here as a plan the command
//! line shows and confirms; the only decision left to a person is whether to
//! regenerate what is stale, asked between [`Engine::candidates`] and
//! [`Engine::select`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::engine::{Engine, Status};
use crate::lock::Lock;
use crate::plan::{Plan, Unit};

/// What to select among the units a command names (indexes into the plan).
#[derive(Debug, Clone)]
pub struct SelectionRequest<'r> {
    /// The units named by target and artifact, in plan order.
    pub units: &'r [usize],
    /// Regenerate even what is current (`regenerate`).
    pub force: bool,
    /// With `force`: only what was generated longer ago than this.
    pub older_than: Option<Duration>,
    /// Also regenerate what depends on a regenerated unit, on every target.
    pub cascade: bool,
    /// Replace what another backend than the declared one stores.
    pub replace_elsewhere: bool,
    /// The time ages are measured at.
    pub now: SystemTime,
    /// How many units to check at once.
    pub jobs: usize,
}

/// Why a unit is generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Stored nowhere.
    Missing,
    /// Asked for by `regenerate`.
    Forced,
    /// Generated this long ago, more than `--older-than`.
    Older(Duration),
    /// Stored, but no longer matching the declaration (accepted by the caller).
    Stale(String),
    /// A unit it depends on is regenerated.
    DependsOn {
        /// The unit it depends on.
        unit: usize,
        /// That unit's label.
        label: String,
    },
    /// Stored by another backend; replaced because the request says so.
    ReplacesElsewhere {
        /// The backend that stores it.
        stored_in: String,
    },
    /// Stored by another backend: replaced or held back by [`Engine::select`].
    Elsewhere,
    /// Its backend stores nothing (passthrough): the generator runs so its
    /// output is checked, as upstream does, and nothing is stored.
    Passthrough,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("missing"),
            Reason::Forced => f.write_str("forced"),
            // Whole hours are precise enough.
            Reason::Older(age) => write!(
                f,
                "generated {} ago",
                humantime::format_duration(Duration::from_secs(age.as_secs() / 3600 * 3600))
            ),
            Reason::Stale(reason) => write!(f, "stale: {reason}"),
            Reason::DependsOn { label, .. } => write!(f, "depends on {label}"),
            Reason::ReplacesElsewhere { stored_in } => {
                write!(f, "stored in {stored_in}; replaced by a new secret")
            }
            Reason::Elsewhere => Ok(()),
            Reason::Passthrough => f.write_str("only checked: the backend stores nothing"),
        }
    }
}

/// Something about a unit the caller should tell, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `--older-than` cannot judge a unit the lock has no time for.
    NoGenerationTime(usize),
    /// Stored but not in the lock: left alone.
    Untracked(usize),
    /// Stored for other recipients: `rekey` fixes it without regenerating.
    RecipientsChanged(usize),
    /// The check failed: never taken for "missing".
    CheckFailed {
        /// The unit.
        unit: usize,
        /// Why.
        reason: String,
    },
    /// Stored by another backend, and not replaced.
    HeldElsewhere {
        /// The unit.
        unit: usize,
        /// Where it is stored, as [`Status::reason`] says.
        reason: String,
    },
    /// Would follow a held-back unit, so held back too.
    HeldDependent {
        /// The unit.
        unit: usize,
        /// The label of the unit it would follow.
        dependency: String,
    },
}

/// The first step: what needs generating before anyone is asked about
/// what is stale.
#[derive(Debug)]
pub struct Candidates {
    /// Chosen so far, in plan order.
    pub chosen: Vec<(usize, Reason)>,
    /// Stale units and why: regenerated only if the caller accepts.
    pub stale: Vec<(usize, String)>,
    /// What to tell, in the order found.
    pub findings: Vec<Finding>,
    /// How many checks failed.
    pub check_errors: usize,
    /// Statuses already checked, so each unit is checked once.
    known: BTreeMap<usize, Status>,
    cascade: bool,
    replace_elsewhere: bool,
    jobs: usize,
}

/// What to generate, in plan order (which is dependency order).
#[derive(Debug)]
pub struct Selection {
    /// The units and why each one.
    pub units: Vec<(usize, Reason)>,
    /// What the guard held back, in the order found.
    pub findings: Vec<Finding>,
    /// How many units another backend stores were held back.
    pub held_back: usize,
    /// How many stale units were left as they are.
    pub left_stale: usize,
    /// Failed checks and held-back units: the run fails even if all else works.
    pub check_errors: usize,
}

impl Selection {
    /// The unit indexes, in order.
    pub fn indexes(&self) -> Vec<usize> {
        self.units.iter().map(|(i, _)| *i).collect()
    }
}

impl Engine<'_> {
    /// What `request` selects before stale units are decided on: missing
    /// ones (or, forced, all or those older than the limit); units whose
    /// backend stores nothing are selected unforced only
    /// ([`Reason::Passthrough`]: their output is checked, nothing stored).
    pub fn candidates(
        &self,
        plan: &Plan<'_>,
        lock: &Lock,
        request: &SelectionRequest<'_>,
    ) -> Candidates {
        let (passthrough, storing): (Vec<usize>, Vec<usize>) = request
            .units
            .iter()
            .copied()
            .partition(|&i| self.is_passthrough(&plan.units[i]));
        let mut candidates = Candidates {
            chosen: Vec::new(),
            stale: Vec::new(),
            findings: Vec::new(),
            check_errors: 0,
            known: BTreeMap::new(),
            cascade: request.cascade,
            replace_elsewhere: request.replace_elsewhere,
            jobs: request.jobs,
        };
        if request.force {
            for index in storing {
                match request.older_than {
                    None => candidates.chosen.push((index, Reason::Forced)),
                    Some(limit) => match age(&plan.units[index], lock, request.now) {
                        Some(age) if age > limit => {
                            candidates.chosen.push((index, Reason::Older(age)))
                        }
                        Some(_) => {}
                        None => candidates.findings.push(Finding::NoGenerationTime(index)),
                    },
                }
            }
        } else {
            let statuses = self.statuses(plan, &storing, lock, request.jobs);
            for (index, status) in storing.into_iter().zip(statuses) {
                candidates.sort(index, &status);
                candidates.known.insert(index, status);
            }
            for index in passthrough {
                candidates.chosen.push((index, Reason::Passthrough));
                candidates.known.insert(index, Status::Passthrough);
            }
        }
        candidates
    }

    /// The selection, with the stale candidates if `accept_stale`, cascaded
    /// to dependents unless the request said not to, and guarded: what
    /// another backend stores is held back (with what would only follow it)
    /// unless the request said to replace it.
    pub fn select(
        &self,
        plan: &Plan<'_>,
        lock: &Lock,
        mut candidates: Candidates,
        accept_stale: bool,
    ) -> Selection {
        let left_stale = if accept_stale {
            let stale = std::mem::take(&mut candidates.stale);
            candidates.chosen.extend(
                stale
                    .into_iter()
                    .map(|(i, reason)| (i, Reason::Stale(reason))),
            );
            0
        } else {
            candidates.stale.len()
        };
        let mut order = candidates.chosen;
        if candidates.cascade {
            cascade(
                &mut order,
                &|unit| plan.dependents_of(unit),
                &|unit| self.is_passthrough(&plan.units[unit]),
                &|unit| plan.units[unit].label(),
            );
        }
        order.sort_by_key(|(i, _)| *i);
        let unknown: Vec<usize> = order
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| !candidates.known.contains_key(i))
            .collect();
        let statuses = self.statuses(plan, &unknown, lock, candidates.jobs);
        candidates.known.extend(unknown.into_iter().zip(statuses));
        let (units, findings) = guard(order, &candidates.known, candidates.replace_elsewhere);
        let held_back = findings
            .iter()
            .filter(|f| matches!(f, Finding::HeldElsewhere { .. }))
            .count();
        Selection {
            units,
            findings,
            held_back,
            left_stale,
            check_errors: candidates.check_errors + held_back,
        }
    }
}

impl Candidates {
    /// Files one checked unit under chosen, stale or a finding.
    fn sort(&mut self, index: usize, status: &Status) {
        match status {
            Status::Missing => self.chosen.push((index, Reason::Missing)),
            Status::Elsewhere { .. } => self.chosen.push((index, Reason::Elsewhere)),
            Status::Untracked { .. } => self.findings.push(Finding::Untracked(index)),
            Status::Stale { reason, .. } => self.stale.push((index, reason.clone())),
            Status::RecipientsChanged => self.findings.push(Finding::RecipientsChanged(index)),
            Status::Error { reason } => {
                self.check_errors += 1;
                self.findings.push(Finding::CheckFailed {
                    unit: index,
                    reason: reason.clone(),
                });
            }
            Status::Ok | Status::Passthrough => {}
        }
    }
}

/// How long before `now` a unit was generated, per the lock.
pub fn age(unit: &Unit<'_>, lock: &Lock, now: SystemTime) -> Option<Duration> {
    let generated = lock.get(&unit.scope(), unit.name())?.generated_at()?;
    now.duration_since(generated).ok()
}

/// Adds the dependents of every unit in `order` (and theirs), except those
/// `skip` says store nothing: a new shared CA invalidates every machine's
/// certificate.
fn cascade(
    order: &mut Vec<(usize, Reason)>,
    dependents: &dyn Fn(usize) -> Vec<usize>,
    skip: &dyn Fn(usize) -> bool,
    label: &dyn Fn(usize) -> String,
) {
    let mut next = 0;
    while next < order.len() {
        let unit = order[next].0;
        for dependent in dependents(unit) {
            if !order.iter().any(|(i, _)| *i == dependent) && !skip(dependent) {
                let label = label(unit);
                order.push((dependent, Reason::DependsOn { unit, label }));
            }
        }
        next += 1;
    }
}

/// Splits `order` into what runs and what is held back: a unit another
/// backend stores (generating would replace a working secret) unless
/// `replace`, and a unit regenerated only because of a held-back one.
fn guard(
    order: Vec<(usize, Reason)>,
    known: &BTreeMap<usize, Status>,
    replace: bool,
) -> (Vec<(usize, Reason)>, Vec<Finding>) {
    let mut held: Vec<usize> = Vec::new();
    let mut findings = Vec::new();
    let mut kept = Vec::new();
    for (index, reason) in order {
        if let Some(status @ Status::Elsewhere { stored_in, .. }) = known.get(&index) {
            if replace {
                let stored_in = stored_in.clone();
                kept.push((index, Reason::ReplacesElsewhere { stored_in }));
            } else {
                let reason = status.reason().unwrap_or_default();
                findings.push(Finding::HeldElsewhere {
                    unit: index,
                    reason,
                });
                held.push(index);
            }
            continue;
        }
        if let Reason::DependsOn { unit, label } = &reason
            && held.contains(unit)
        {
            findings.push(Finding::HeldDependent {
                unit: index,
                dependency: label.clone(),
            });
            held.push(index);
            continue;
        }
        kept.push((index, reason));
    }
    (kept, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elsewhere() -> Status {
        Status::Elsewhere {
            artifact: "ca".into(),
            stored_in: "sops-nix".into(),
            declared: "agenix".into(),
        }
    }

    fn depends_on(unit: usize) -> Reason {
        Reason::DependsOn {
            unit,
            label: format!("unit{unit}"),
        }
    }

    #[test]
    fn the_guard_holds_back_what_another_backend_stores_and_what_only_follows_it() {
        let known = BTreeMap::from([(0, elsewhere()), (2, Status::Missing)]);
        let order = vec![
            (0, Reason::Elsewhere),
            (1, depends_on(0)),
            (2, Reason::Missing),
        ];
        let (kept, findings) = guard(order, &known, false);
        assert_eq!(kept, vec![(2, Reason::Missing)]);
        assert!(matches!(
            findings[0],
            Finding::HeldElsewhere { unit: 0, .. }
        ));
        assert_eq!(
            findings[1],
            Finding::HeldDependent {
                unit: 1,
                dependency: "unit0".into()
            }
        );
    }

    #[test]
    fn the_guard_replaces_what_another_backend_stores_when_asked() {
        let known = BTreeMap::from([(0, elsewhere())]);
        let order = vec![(0, Reason::Elsewhere), (1, depends_on(0))];
        let (kept, findings) = guard(order, &known, true);
        assert!(findings.is_empty());
        assert_eq!(
            kept[0].1.to_string(),
            "stored in sops-nix; replaced by a new secret"
        );
        assert_eq!(kept[1], (1, depends_on(0)));
    }

    #[test]
    fn the_cascade_follows_dependents_of_dependents_once_and_skips_passthrough() {
        // 0 <- 1 <- 2, 0 <- 3 (stores nothing), 1 <- 4; 2 also depends on 4.
        let dependents = |unit: usize| match unit {
            0 => vec![1, 2, 3, 4],
            1 => vec![2, 4],
            4 => vec![2],
            _ => vec![],
        };
        let mut order = vec![(1, Reason::Missing), (0, Reason::Forced)];
        cascade(&mut order, &dependents, &|unit| unit == 3, &|unit| {
            format!("unit{unit}")
        });
        assert_eq!(
            order,
            vec![
                (1, Reason::Missing),
                (0, Reason::Forced),
                (2, depends_on(1)),
                (4, depends_on(1)),
            ]
        );
    }

    #[test]
    fn checked_units_are_chosen_left_for_the_stale_question_or_told() {
        let mut candidates = Candidates {
            chosen: Vec::new(),
            stale: Vec::new(),
            findings: Vec::new(),
            check_errors: 0,
            known: BTreeMap::new(),
            cascade: true,
            replace_elsewhere: false,
            jobs: 1,
        };
        let statuses = [
            Status::Ok,
            Status::Missing,
            elsewhere(),
            Status::Untracked {
                artifact: "u".into(),
            },
            Status::Stale {
                cause: crate::engine::StaleCause::Declaration,
                reason: "generator changed".into(),
            },
            Status::RecipientsChanged,
            Status::error("backend check failed"),
            Status::Passthrough,
        ];
        for (index, status) in statuses.iter().enumerate() {
            candidates.sort(index, status);
        }
        assert_eq!(
            candidates.chosen,
            vec![(1, Reason::Missing), (2, Reason::Elsewhere)]
        );
        assert_eq!(candidates.stale, vec![(4, "generator changed".to_owned())]);
        assert_eq!(
            candidates.findings,
            vec![
                Finding::Untracked(3),
                Finding::RecipientsChanged(5),
                Finding::CheckFailed {
                    unit: 6,
                    reason: "backend check failed".into()
                },
            ]
        );
        // A failing check is never taken for "missing", and fails the run.
        assert_eq!(candidates.check_errors, 1);
    }

    #[test]
    fn reasons_read_as_the_dry_run_prints_them() {
        let age = Duration::from_secs(2 * 86_400 + 5 * 3600 + 59 * 60);
        assert_eq!(Reason::Older(age).to_string(), "generated 2days 5h ago");
        assert_eq!(Reason::Stale("x".into()).to_string(), "stale: x");
        assert_eq!(depends_on(3).to_string(), "depends on unit3");
    }
}
