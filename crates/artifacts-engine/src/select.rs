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
use crate::lockfile::Lock;
use crate::plan::{Plan, Unit, UnitId};

/// What to select among the units a command names (indexes into the plan).
#[derive(Debug, Clone)]
pub struct SelectionRequest<'r> {
    /// The units named by target and artifact, in plan order.
    pub units: &'r [UnitId],
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
        unit: UnitId,
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
        }
    }
}

/// Something about a unit the caller should tell, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `--older-than` cannot judge a unit the lock has no time for.
    NoGenerationTime(UnitId),
    /// Stored but not in the lock: left alone.
    Untracked(UnitId),
    /// Stored for other recipients: `rekey` fixes it without regenerating.
    RecipientsChanged(UnitId),
    /// The check failed: never taken for "missing".
    CheckFailed {
        /// The unit.
        unit: UnitId,
        /// Why.
        reason: String,
    },
    /// Stored by another backend, and not replaced.
    HeldElsewhere {
        /// The unit.
        unit: UnitId,
        /// Where it is stored, as [`Status::reason`] says.
        reason: String,
    },
    /// Would follow a held-back unit, so held back too.
    HeldDependent {
        /// The unit.
        unit: UnitId,
        /// The label of the unit it would follow.
        dependency: String,
    },
}

/// The first step: what needs generating before anyone is asked about
/// what is stale.
#[derive(Debug)]
pub struct Candidates {
    /// Chosen so far, in plan order.
    pub chosen: Vec<(UnitId, Reason)>,
    /// Stale units and why: regenerated only if the caller accepts.
    pub stale: Vec<(UnitId, String)>,
    /// What to tell, in the order found.
    pub findings: Vec<Finding>,
    /// How many checks failed.
    pub check_errors: usize,
    /// Statuses already checked, so each unit is checked once.
    known: BTreeMap<UnitId, Status>,
    cascade: bool,
    replace_elsewhere: bool,
    jobs: usize,
}

/// What to generate, in plan order (which is dependency order).
#[derive(Debug)]
pub struct Selection {
    /// The units and why each one.
    pub units: Vec<(UnitId, Reason)>,
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
    pub fn indexes(&self) -> Vec<UnitId> {
        self.units.iter().map(|(i, _)| *i).collect()
    }
}

impl Engine<'_> {
    /// What `request` selects before stale units are decided on: missing
    /// ones (or, forced, all or those older than the limit); units whose
    /// backend stores nothing are never selected.
    pub fn candidates(
        &self,
        plan: &Plan<'_>,
        lock: &Lock,
        request: &SelectionRequest<'_>,
    ) -> Candidates {
        let storing: Vec<UnitId> = request
            .units
            .iter()
            .copied()
            .filter(|&i| !self.is_passthrough(&plan[i]))
            .collect();
        let mut candidates =
            Candidates::empty(request.cascade, request.replace_elsewhere, request.jobs);
        if request.force {
            for index in storing {
                match request.older_than {
                    None => candidates.chosen.push((index, Reason::Forced)),
                    Some(limit) => match age(&plan[index], lock, request.now) {
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
                &|unit| self.is_passthrough(&plan[unit]),
                &|unit| plan[unit].label(),
            );
        }
        order.sort_by_key(|(i, _)| *i);
        let unknown: Vec<UnitId> = order
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
    /// Nothing chosen yet; remembers what [`Engine::select`] needs of the request.
    fn empty(cascade: bool, replace_elsewhere: bool, jobs: usize) -> Candidates {
        Candidates {
            chosen: Vec::new(),
            stale: Vec::new(),
            findings: Vec::new(),
            check_errors: 0,
            known: BTreeMap::new(),
            cascade,
            replace_elsewhere,
            jobs,
        }
    }

    /// Files one checked unit under chosen, stale or a finding.
    fn sort(&mut self, index: UnitId, status: &Status) {
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
    order: &mut Vec<(UnitId, Reason)>,
    dependents: &dyn Fn(UnitId) -> Vec<UnitId>,
    skip: &dyn Fn(UnitId) -> bool,
    label: &dyn Fn(UnitId) -> String,
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
    order: Vec<(UnitId, Reason)>,
    known: &BTreeMap<UnitId, Status>,
    replace: bool,
) -> (Vec<(UnitId, Reason)>, Vec<Finding>) {
    let mut held: Vec<UnitId> = Vec::new();
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

    fn u(index: usize) -> UnitId {
        UnitId(index)
    }

    fn elsewhere() -> Status {
        Status::Elsewhere {
            artifact: "ca".into(),
            stored_in: "sops-nix".into(),
            declared: "agenix".into(),
        }
    }

    fn depends_on(unit: UnitId) -> Reason {
        Reason::DependsOn {
            unit,
            label: format!("unit{}", unit.0),
        }
    }

    #[test]
    fn the_guard_holds_back_what_another_backend_stores_and_what_only_follows_it() {
        let known = BTreeMap::from([(u(0), elsewhere()), (u(2), Status::Missing)]);
        let order = vec![
            (u(0), Reason::Elsewhere),
            (u(1), depends_on(u(0))),
            (u(2), Reason::Missing),
        ];
        let (kept, findings) = guard(order, &known, false);
        assert_eq!(kept, vec![(u(2), Reason::Missing)]);
        assert!(matches!(
            findings[0],
            Finding::HeldElsewhere {
                unit: UnitId(0),
                ..
            }
        ));
        assert_eq!(
            findings[1],
            Finding::HeldDependent {
                unit: u(1),
                dependency: "unit0".into()
            }
        );
    }

    #[test]
    fn the_guard_replaces_what_another_backend_stores_when_asked() {
        let known = BTreeMap::from([(u(0), elsewhere())]);
        let order = vec![(u(0), Reason::Elsewhere), (u(1), depends_on(u(0)))];
        let (kept, findings) = guard(order, &known, true);
        assert!(findings.is_empty());
        assert_eq!(
            kept[0].1.to_string(),
            "stored in sops-nix; replaced by a new secret"
        );
        assert_eq!(kept[1], (u(1), depends_on(u(0))));
    }

    #[test]
    fn the_cascade_follows_dependents_of_dependents_once_and_skips_passthrough() {
        // 0 <- 1 <- 2, 0 <- 3 (stores nothing), 1 <- 4; 2 also depends on 4.
        let dependents = |unit: UnitId| {
            let ids: &[usize] = match unit.0 {
                0 => &[1, 2, 3, 4],
                1 => &[2, 4],
                4 => &[2],
                _ => &[],
            };
            ids.iter().copied().map(UnitId).collect()
        };
        let mut order = vec![(u(1), Reason::Missing), (u(0), Reason::Forced)];
        cascade(&mut order, &dependents, &|unit| unit == u(3), &|unit| {
            format!("unit{}", unit.0)
        });
        assert_eq!(
            order,
            vec![
                (u(1), Reason::Missing),
                (u(0), Reason::Forced),
                (u(2), depends_on(u(1))),
                (u(4), depends_on(u(1))),
            ]
        );
    }

    #[test]
    fn checked_units_are_chosen_left_for_the_stale_question_or_told() {
        let mut candidates = Candidates::empty(true, false, 1);
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
            candidates.sort(u(index), status);
        }
        assert_eq!(
            candidates.chosen,
            vec![(u(1), Reason::Missing), (u(2), Reason::Elsewhere)]
        );
        assert_eq!(
            candidates.stale,
            vec![(u(4), "generator changed".to_owned())]
        );
        assert_eq!(
            candidates.findings,
            vec![
                Finding::Untracked(u(3)),
                Finding::RecipientsChanged(u(5)),
                Finding::CheckFailed {
                    unit: u(6),
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
        assert_eq!(depends_on(u(3)).to_string(), "depends on unit3");
    }
}
