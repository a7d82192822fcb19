//! The checks run on a finished history and the healed cluster's final
//! state. Each violation names the check, says what was expected and what
//! was seen, and carries the operations involved.
//!
//! Vocabulary: a *logical send* is every attempt sharing one request id (the
//! same body). It is *acknowledged* when an attempt returned the message.
//! A message's *id* orders its conversation (ids grow with the log). A
//! delete *may have applied* unless the server refused it outright.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::history::{Micros, Op, Outcome, Request, Seen};
use super::nemesis::HealthTimeline;

/// What the healed cluster holds, read from every replica.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// Replica → conversation → messages, oldest first.
    pub histories: BTreeMap<u64, BTreeMap<u64, Vec<Seen>>>,
    /// Replica → (user, conversation) → the newest id that user has read.
    pub read_up_to: BTreeMap<u64, BTreeMap<(String, u64), u64>>,
    /// Replica → state digest.
    pub digests: BTreeMap<u64, String>,
}

/// One broken guarantee.
#[derive(Debug, Clone)]
pub struct Violation {
    pub check: &'static str,
    pub detail: String,
    pub ops: Vec<Op>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[{}] {}", self.check, self.detail)?;
        for op in &self.ops {
            let json = serde_json::to_string(op).unwrap_or_else(|e| format!("{op:?} ({e})"));
            writeln!(f, "    {json}")?;
        }
        Ok(())
    }
}

/// Operation counts of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        self.attempted += 1;
        match outcome {
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Unknown { .. } => self.unknown += 1,
            _ => self.ok += 1,
        }
    }
}

/// Availability while a majority was up and connected.
#[derive(Debug, Clone, Default)]
pub struct Availability {
    /// Operations invoked and completed inside a healthy interval.
    pub healthy_ops: u64,
    pub healthy_ok: u64,
    /// The same, leaving out the first `grace` of each interval (an
    /// election after a heal is expected to take that long).
    pub grace_ms: u64,
    pub settled_ops: u64,
    pub settled_ok: u64,
    /// Longest time without any successful operation, anywhere in the run.
    pub longest_gap_ms: u64,
    pub longest_gap_at_ms: u64,
    /// Longest time without a successful operation while a majority was
    /// healthy (measured from the start of the healthy interval).
    pub longest_healthy_gap_ms: u64,
    pub longest_healthy_gap_at_ms: u64,
}

/// The verdict on a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per kind: `send` counts logical sends (an unknown attempt retried to
    /// success counts once, as ok); `send-attempt` counts attempts.
    pub tallies: BTreeMap<&'static str, Tally>,
    pub counts: BTreeMap<&'static str, u64>,
    pub availability: Availability,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// A count per check (`lost`, `duplicated`, ...), zero when clean.
    pub fn count(&self, check: &str) -> u64 {
        self.counts.get(check).copied().unwrap_or(0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "operations (attempted / ok / failed / unknown):")?;
        for (kind, t) in &self.tallies {
            writeln!(
                f,
                "  {kind:<13} {:>7} / {:>7} / {:>5} / {:>5}",
                t.attempted, t.ok, t.failed, t.unknown
            )?;
        }
        let checks = [
            "lost",
            "duplicated",
            "reordered",
            "divergent",
            "phantom",
            "stale-read",
            "resurrected",
            "read-up-to",
            "reply",
        ];
        let line: Vec<String> = checks
            .iter()
            .map(|c| format!("{c} {}", self.count(c)))
            .collect();
        writeln!(f, "anomalies: {}", line.join(", "))?;
        let a = &self.availability;
        writeln!(
            f,
            "availability with a healthy majority: {} of {} ops ok ({}); after {} ms grace: {} of {} ({})",
            a.healthy_ok,
            a.healthy_ops,
            percent(a.healthy_ok, a.healthy_ops),
            a.grace_ms,
            a.settled_ok,
            a.settled_ops,
            percent(a.settled_ok, a.settled_ops)
        )?;
        writeln!(
            f,
            "longest window without a successful op: {} ms (at {} ms); with a healthy majority: {} ms (at {} ms)",
            a.longest_gap_ms, a.longest_gap_at_ms, a.longest_healthy_gap_ms, a.longest_healthy_gap_at_ms
        )?;
        for v in &self.violations {
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

fn percent(n: u64, d: u64) -> String {
    if d == 0 {
        "n/a".into()
    } else {
        format!("{:.2}%", 100.0 * n as f64 / d as f64)
    }
}

/// All attempts of one request id.
#[derive(Debug)]
struct LogicalSend<'a> {
    conv: u64,
    body: &'a str,
    /// The message it answers; 0 = none.
    reply_to: u64,
    attempts: Vec<&'a Op>,
    first_invoke: Micros,
    /// The first acknowledging attempt's completion and message id.
    ack: Option<(Micros, u64)>,
}

impl LogicalSend<'_> {
    fn may_have_applied(&self) -> bool {
        self.attempts.iter().any(|a| a.outcome.may_have_applied())
    }

    fn ops(&self) -> Vec<Op> {
        self.attempts.iter().map(|o| (*o).clone()).collect()
    }
}

/// All attempts of one edit's request id.
#[derive(Debug)]
struct LogicalEdit<'a> {
    text: &'a str,
    attempts: Vec<&'a Op>,
    first_invoke: Micros,
    /// The first acknowledging attempt's completion.
    ack: Option<Micros>,
}

impl LogicalEdit<'_> {
    fn may_have_applied(&self) -> bool {
        self.attempts.iter().any(|a| a.outcome.may_have_applied())
    }

    fn ops(&self) -> Vec<Op> {
        self.attempts.iter().map(|o| (*o).clone()).collect()
    }
}

/// Indexes of a history the checks share.
struct Index<'a> {
    /// Message id → its logical edits, by first invocation.
    edits: HashMap<u64, Vec<LogicalEdit<'a>>>,
    sends: Vec<LogicalSend<'a>>,
    /// Body → position in `sends`.
    by_body: HashMap<&'a str, usize>,
    /// Message id → delete ops naming it.
    deletes: HashMap<u64, Vec<&'a Op>>,
}

impl<'a> Index<'a> {
    fn build(ops: &'a [Op], violations: &mut Vec<Violation>) -> Self {
        let mut by_request: BTreeMap<&str, usize> = BTreeMap::new();
        let mut sends: Vec<LogicalSend> = Vec::new();
        let mut deletes: HashMap<u64, Vec<&Op>> = HashMap::new();
        let mut edits: HashMap<u64, Vec<LogicalEdit>> = HashMap::new();
        let mut edit_of: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
        let mut sorted: Vec<&Op> = ops.iter().collect();
        sorted.sort_by_key(|o| (o.invoke, o.id));
        for op in sorted {
            match &op.request {
                Request::Send {
                    conv,
                    body,
                    request_id,
                    reply_to,
                    ..
                } => {
                    let i = *by_request.entry(request_id).or_insert_with(|| {
                        sends.push(LogicalSend {
                            conv: *conv,
                            body,
                            reply_to: *reply_to,
                            attempts: Vec::new(),
                            first_invoke: op.invoke,
                            ack: None,
                        });
                        sends.len() - 1
                    });
                    let send = &mut sends[i];
                    send.attempts.push(op);
                    if let Outcome::Sent { message } = &op.outcome {
                        if send.ack.is_none_or(|(t, _)| op.complete < t) {
                            send.ack = Some((op.complete, message.id));
                        }
                    }
                }
                Request::Delete { ids, .. } => {
                    for id in ids {
                        deletes.entry(*id).or_default().push(op);
                    }
                }
                Request::Edit {
                    id,
                    text,
                    request_id,
                    ..
                } => {
                    let list = edits.entry(*id).or_default();
                    let (_, i) = *edit_of.entry(request_id).or_insert_with(|| {
                        list.push(LogicalEdit {
                            text,
                            attempts: Vec::new(),
                            first_invoke: op.invoke,
                            ack: None,
                        });
                        (*id, list.len() - 1)
                    });
                    let edit = &mut list[i];
                    edit.attempts.push(op);
                    if let Outcome::Sent { message } = &op.outcome {
                        if message.id != *id || message.text() != *text {
                            violations.push(Violation {
                                check: "divergent",
                                detail: format!(
                                    "an edit of message {id} to {text:?} was acknowledged as \
                                     message {} {:?}",
                                    message.id,
                                    message.text()
                                ),
                                ops: vec![op.clone()],
                            });
                        }
                        if edit.ack.is_none_or(|t| op.complete < t) {
                            edit.ack = Some(op.complete);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut by_body = HashMap::new();
        for (i, s) in sends.iter().enumerate() {
            if let Some(prev) = by_body.insert(s.body, i) {
                violations.push(Violation {
                    check: "harness",
                    detail: format!("two logical sends share the body {:?}", s.body),
                    ops: [sends[prev].ops(), s.ops()].concat(),
                });
            }
        }
        Self {
            edits,
            sends,
            by_body,
            deletes,
        }
    }

    /// Whether a delete of `id` invoked before `t` may have applied.
    fn maybe_deleted_before(&self, id: u64, t: Micros) -> bool {
        self.deletes.get(&id).is_some_and(|ds| {
            ds.iter()
                .any(|d| d.invoke < t && d.outcome.may_have_applied())
        })
    }

    /// Whether a delete of `id` was acknowledged before `t`.
    fn deleted_before(&self, id: u64, t: Micros) -> bool {
        self.deletes
            .get(&id)
            .is_some_and(|ds| ds.iter().any(|d| d.outcome.is_ok() && d.complete < t))
    }

    fn delete_ops(&self, id: u64) -> Vec<Op> {
        self.deletes
            .get(&id)
            .map(|ds| ds.iter().map(|d| (*d).clone()).collect())
            .unwrap_or_default()
    }
}

/// Checks a run. `end` is when the workload stopped (for availability).
pub fn check(
    ops: &[Op],
    finals: &FinalState,
    health: &HealthTimeline,
    end: Micros,
    grace_ms: u64,
) -> Report {
    let mut report = Report::default();
    let mut v = Vec::new();
    let index = Index::build(ops, &mut v);
    tally(ops, &index, &mut report);
    let reference = check_convergence(finals, &mut v);
    if let Some(reference) = reference {
        check_final(&index, reference, &mut v);
        check_edits(&index, reference, &mut v);
        check_replies(ops, &index, reference, &mut v);
        check_reactions(ops, reference, &mut v);
        check_read_up_to(ops, finals, &mut v);
    }
    let universe = universe(ops, &index, reference, &mut v);
    check_real_time_order(&index, &universe, &mut v);
    check_reads(ops, &index, &universe, &mut v);
    report.availability = availability(ops, health, end, grace_ms);
    for violation in &v {
        *report.counts.entry(violation.check).or_default() += 1;
    }
    report.violations = v;
    report
}

fn tally(ops: &[Op], index: &Index, report: &mut Report) {
    for op in ops {
        let kind = match op.request {
            Request::Send { .. } => "send-attempt",
            _ => op.request.kind(),
        };
        report.tallies.entry(kind).or_default().add(&op.outcome);
        if matches!(op.request, Request::Send { reply_to, .. } if reply_to != 0) {
            report
                .tallies
                .entry("reply-attempt")
                .or_default()
                .add(&op.outcome);
        }
    }
    let sends = report.tallies.entry("send").or_default();
    for s in &index.sends {
        sends.attempted += 1;
        if s.ack.is_some() {
            sends.ok += 1;
        } else if s.may_have_applied() {
            sends.unknown += 1;
        } else {
            sends.failed += 1;
        }
    }
}

/// Every message, wherever it was seen (the final state, a send's answer,
/// a read), answers the message its send asked it to answer, an older one.
fn check_replies(
    ops: &[Op],
    index: &Index,
    reference: &BTreeMap<u64, Vec<Seen>>,
    v: &mut Vec<Violation>,
) {
    let seen = ops.iter().flat_map(|op| {
        let messages = match &op.outcome {
            Outcome::Sent { message } if matches!(op.request, Request::Send { .. }) => {
                std::slice::from_ref(message)
            }
            Outcome::Page { messages, .. } => messages.as_slice(),
            _ => &[],
        };
        messages.iter().map(move |m| (m, Some(op)))
    });
    let finals = reference.values().flatten().map(|m| (m, None));
    for (m, op) in finals.chain(seen) {
        let Some(&i) = index.by_body.get(m.body.as_str()) else {
            continue; // "phantom" elsewhere
        };
        let asked = index.sends[i].reply_to;
        if m.reply_to != asked || (asked != 0 && asked >= m.id) {
            let mut ops = index.sends[i].ops();
            ops.extend(op.cloned());
            v.push(Violation {
                check: "reply",
                detail: format!(
                    "message {} {:?} answers message {}, but its send asked for {}",
                    m.id, m.body, m.reply_to, asked
                ),
                ops,
            });
        }
    }
}

/// Every replica must hold the same messages in the same order and the same
/// state digest. Returns the first replica's histories as the reference.
fn check_convergence<'f>(
    finals: &'f FinalState,
    v: &mut Vec<Violation>,
) -> Option<&'f BTreeMap<u64, Vec<Seen>>> {
    let (&first, reference) = finals.histories.iter().next()?;
    for (&replica, convs) in finals.histories.iter().skip(1) {
        let ids: BTreeSet<u64> = reference.keys().chain(convs.keys()).copied().collect();
        for conv in ids {
            let empty = Vec::new();
            let a = reference.get(&conv).unwrap_or(&empty);
            let b = convs.get(&conv).unwrap_or(&empty);
            if a != b {
                let at = a
                    .iter()
                    .zip(b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                let window = |l: &[Seen]| -> Vec<String> {
                    l.iter()
                        .skip(at.saturating_sub(2))
                        .take(5)
                        .map(|s| format!("{}:{}", s.id, s.body))
                        .collect()
                };
                v.push(Violation {
                    check: "divergent",
                    detail: format!(
                        "conversation {conv}: replica {first} has {} messages, replica {replica} \
                         has {}; first difference at position {at}: {:?} vs {:?}",
                        a.len(),
                        b.len(),
                        window(a),
                        window(b)
                    ),
                    ops: Vec::new(),
                });
            }
        }
    }
    let digests: BTreeSet<&String> = finals.digests.values().collect();
    if digests.len() > 1 {
        v.push(Violation {
            check: "divergent",
            detail: format!("state digests differ: {:?}", finals.digests),
            ops: Vec::new(),
        });
    }
    Some(reference)
}

/// Ids strictly increase; no duplicates, no phantoms; every acknowledged
/// message present with its acknowledged id; deleted messages gone.
fn check_final(index: &Index, reference: &BTreeMap<u64, Vec<Seen>>, v: &mut Vec<Violation>) {
    let mut present: HashMap<&str, (u64, u64)> = HashMap::new();
    for (&conv, messages) in reference {
        for pair in messages.windows(2) {
            if pair[0].id >= pair[1].id {
                v.push(Violation {
                    check: "reordered",
                    detail: format!(
                        "conversation {conv}: id {} ({}) comes before id {} ({}) in the history",
                        pair[0].id, pair[0].body, pair[1].id, pair[1].body
                    ),
                    ops: Vec::new(),
                });
            }
        }
        for m in messages {
            let Some(&i) = index.by_body.get(m.body.as_str()) else {
                v.push(Violation {
                    check: "phantom",
                    detail: format!(
                        "conversation {conv}: message {} {:?} was never sent by any client",
                        m.id, m.body
                    ),
                    ops: Vec::new(),
                });
                continue;
            };
            let send = &index.sends[i];
            if let Some((prev_conv, prev_id)) = present.insert(&m.body, (conv, m.id)) {
                v.push(Violation {
                    check: "duplicated",
                    detail: format!(
                        "{:?} appears twice: id {prev_id} in conversation {prev_conv} and id {} in \
                         conversation {conv}",
                        m.body, m.id
                    ),
                    ops: send.ops(),
                });
            }
            if send.conv != conv {
                v.push(Violation {
                    check: "phantom",
                    detail: format!(
                        "{:?} was sent to conversation {} but is in conversation {conv}",
                        m.body, send.conv
                    ),
                    ops: send.ops(),
                });
            }
            if !send.may_have_applied() {
                v.push(Violation {
                    check: "phantom",
                    detail: format!(
                        "{:?} (id {}) is in the history but every attempt to send it was refused",
                        m.body, m.id
                    ),
                    ops: send.ops(),
                });
            }
            if let Some((_, acked)) = send.ack {
                if acked != m.id {
                    v.push(Violation {
                        check: "duplicated",
                        detail: format!(
                            "{:?} was acknowledged as id {acked} but the history has it as id {}",
                            m.body, m.id
                        ),
                        ops: send.ops(),
                    });
                }
            }
            if index.deleted_before(m.id, Micros::MAX) {
                v.push(Violation {
                    check: "resurrected",
                    detail: format!(
                        "{:?} (id {}) is in the final history although its delete was acknowledged",
                        m.body, m.id
                    ),
                    ops: [send.ops(), index.delete_ops(m.id)].concat(),
                });
            }
        }
    }
    for send in &index.sends {
        let oks: BTreeSet<u64> = send
            .attempts
            .iter()
            .filter_map(|a| match &a.outcome {
                Outcome::Sent { message } => Some(message.id),
                _ => None,
            })
            .collect();
        if oks.len() > 1 {
            v.push(Violation {
                check: "duplicated",
                detail: format!(
                    "retries of {:?} with one request id were acknowledged as different messages {oks:?}",
                    send.body
                ),
                ops: send.ops(),
            });
        }
        let Some((at, id)) = send.ack else { continue };
        if present.contains_key(send.body) || index.maybe_deleted_before(id, Micros::MAX) {
            continue;
        }
        v.push(Violation {
            check: "lost",
            detail: format!(
                "{:?} (id {id}, conversation {}) was acknowledged at {} ms and never deleted, but \
                 is missing from the final history",
                send.body,
                send.conv,
                at / 1000
            ),
            ops: send.ops(),
        });
    }
}

/// Every message's final text is its latest acknowledged edit's, or that
/// of an edit that may have applied after it; never the text of an edit
/// every attempt of which was refused, never a text no edit asked for, and
/// never an edit's that was acknowledged before another acknowledged edit
/// of the message began (the later one lost, or the earlier one applied
/// twice). Replicas agreeing on the text is `check_convergence`'s.
fn check_edits(index: &Index, reference: &BTreeMap<u64, Vec<Seen>>, v: &mut Vec<Violation>) {
    for (&conv, messages) in reference {
        for m in messages {
            let Some(edits) = index.edits.get(&m.id) else {
                if !m.edit.is_empty() {
                    v.push(Violation {
                        check: "phantom",
                        detail: format!(
                            "conversation {conv}: message {} shows {:?}, but nobody edited it",
                            m.id,
                            m.text()
                        ),
                        ops: Vec::new(),
                    });
                }
                continue;
            };
            let all = || edits.iter().flat_map(LogicalEdit::ops).collect::<Vec<_>>();
            let text = m.text();
            if m.edit.is_empty() {
                if let Some(acked) = edits.iter().find(|e| e.ack.is_some()) {
                    v.push(Violation {
                        check: "lost",
                        detail: format!(
                            "conversation {conv}: message {} still shows {text:?} although its \
                             edit to {:?} was acknowledged",
                            m.id, acked.text
                        ),
                        ops: all(),
                    });
                }
                continue;
            }
            let Some(shown) = edits.iter().find(|e| e.text == text) else {
                v.push(Violation {
                    check: "phantom",
                    detail: format!(
                        "conversation {conv}: message {} shows {text:?}, which no edit of it asked for",
                        m.id
                    ),
                    ops: all(),
                });
                continue;
            };
            if !shown.may_have_applied() {
                v.push(Violation {
                    check: "phantom",
                    detail: format!(
                        "conversation {conv}: message {} shows {text:?}, but every attempt of that \
                         edit was refused",
                        m.id
                    ),
                    ops: all(),
                });
            }
            let Some(shown_ack) = shown.ack else { continue };
            if let Some(later) = edits
                .iter()
                .find(|e| e.ack.is_some() && e.first_invoke > shown_ack)
            {
                v.push(Violation {
                    check: "lost",
                    detail: format!(
                        "conversation {conv}: message {} shows {text:?}, acknowledged at {} ms, \
                         but its edit to {:?} begun after that was acknowledged too (lost, or \
                         the first applied twice)",
                        m.id,
                        shown_ack / 1000,
                        later.text
                    ),
                    ops: all(),
                });
            }
        }
    }
}

/// Each user's final reaction to a message is the one its last
/// acknowledged toggle left (as the acknowledgement showed it), when every
/// toggle of that user on that message has a definite outcome (a toggle
/// that may or may not have applied could have flipped it). A toggle
/// applied twice, or an acknowledged one lost, shows here. Replicas
/// agreeing on reactions is `check_convergence`'s.
fn check_reactions(ops: &[Op], reference: &BTreeMap<u64, Vec<Seen>>, v: &mut Vec<Violation>) {
    let mut toggles: BTreeMap<(&str, u64), Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if let Request::React { id, .. } = &op.request {
            toggles.entry((op.user.as_str(), *id)).or_default().push(op);
        }
    }
    let finals: HashMap<u64, &Seen> = reference.values().flatten().map(|m| (m.id, m)).collect();
    for ((user, id), list) in toggles {
        let Some(m) = finals.get(&id) else { continue };
        if list
            .iter()
            .any(|o| matches!(o.outcome, Outcome::Unknown { .. }))
        {
            continue;
        }
        let Some((last, shown)) = list
            .iter()
            .filter_map(|o| match &o.outcome {
                Outcome::Sent { message } => Some((*o, message)),
                _ => None,
            })
            .max_by_key(|(o, _)| o.complete)
        else {
            continue;
        };
        let (want, got) = (shown.reaction_of(user), m.reaction_of(user));
        if want != got {
            v.push(Violation {
                check: "lost",
                detail: format!(
                    "message {id}: {user}'s last acknowledged toggle (at {} ms) left {want:?}, \
                     the final state has {got:?}",
                    last.complete / 1000
                ),
                ops: list.iter().map(|o| (*o).clone()).collect(),
            });
        }
    }
}

/// A message as every observation knows it.
#[derive(Debug, Clone)]
struct Known {
    body: String,
    send: Option<usize>,
    /// Earliest time it was certainly visible: acknowledged, or returned by
    /// a read that completed.
    visible_since: Micros,
}

/// Conversation → id → message, from acknowledgements, reads and the final
/// state. An id naming two bodies, or a body under two ids, is reported.
type Universe = BTreeMap<u64, BTreeMap<u64, Known>>;

fn universe(
    ops: &[Op],
    index: &Index,
    reference: Option<&BTreeMap<u64, Vec<Seen>>>,
    v: &mut Vec<Violation>,
) -> Universe {
    let mut u: Universe = BTreeMap::new();
    let mut id_of: HashMap<String, (u64, u64)> = HashMap::new();
    let mut add = |conv: u64,
                   m: &Seen,
                   visible: Micros,
                   op: Option<&Op>,
                   v: &mut Vec<Violation>| {
        let send = index.by_body.get(m.body.as_str()).copied();
        let entry = u
            .entry(conv)
            .or_default()
            .entry(m.id)
            .or_insert_with(|| Known {
                body: m.body.clone(),
                send,
                visible_since: visible,
            });
        entry.visible_since = entry.visible_since.min(visible);
        if entry.body != m.body {
            v.push(Violation {
                check: "divergent",
                detail: format!(
                    "conversation {conv}: message id {} was seen as {:?} and as {:?}",
                    m.id, entry.body, m.body
                ),
                ops: op.into_iter().cloned().collect(),
            });
        }
        if let Some((c, id)) = id_of.insert(m.body.clone(), (conv, m.id)) {
            if (c, id) != (conv, m.id) {
                v.push(Violation {
                    check: "duplicated",
                    detail: format!(
                        "{:?} was seen as id {id} (conversation {c}) and as id {} (conversation {conv})",
                        m.body, m.id
                    ),
                    ops: op.into_iter().cloned().collect(),
                });
            }
        }
    };
    for op in ops {
        match (&op.request, &op.outcome) {
            (Request::Send { conv, .. }, Outcome::Sent { message }) => {
                add(*conv, message, op.complete, Some(op), v)
            }
            (Request::Read { conv, .. }, Outcome::Page { messages, .. }) => {
                for m in messages {
                    add(*conv, m, op.complete, Some(op), v);
                }
            }
            _ => {}
        }
    }
    if let Some(reference) = reference {
        for (conv, messages) in reference {
            for m in messages {
                add(*conv, m, Micros::MAX, None, v);
            }
        }
    }
    u
}

/// A send acknowledged before another was invoked has the smaller id.
fn check_real_time_order(index: &Index, universe: &Universe, v: &mut Vec<Violation>) {
    for (conv, messages) in universe {
        let mut acks: Vec<(Micros, u64, usize)> = Vec::new();
        let mut invokes: Vec<(Micros, u64, usize)> = Vec::new();
        for (&id, known) in messages {
            let Some(i) = known.send else { continue };
            let send = &index.sends[i];
            if let Some((at, _)) = send.ack {
                acks.push((at, id, i));
            }
            invokes.push((send.first_invoke, id, i));
        }
        acks.sort_unstable();
        invokes.sort_unstable();
        let mut next = 0;
        let mut newest: Option<(u64, usize)> = None;
        for (invoked, id, i) in invokes {
            while next < acks.len() && acks[next].0 < invoked {
                let (_, aid, ai) = acks[next];
                if newest.is_none_or(|(n, _)| aid > n) {
                    newest = Some((aid, ai));
                }
                next += 1;
            }
            if let Some((nid, ni)) = newest {
                if nid > id {
                    let (a, b) = (&index.sends[ni], &index.sends[i]);
                    v.push(Violation {
                        check: "reordered",
                        detail: format!(
                            "conversation {conv}: {:?} was acknowledged (id {nid}) before {:?} was \
                             invoked, yet {:?} has the smaller id {id}",
                            a.body, b.body, b.body
                        ),
                        ops: [a.ops(), b.ops()].concat(),
                    });
                }
            }
        }
    }
}

/// Every read sees each message that was visible before the read began and
/// not (possibly) deleted before it ended; it sees nothing unsent, nothing
/// not yet sent, nothing whose delete was acknowledged before it began.
fn check_reads(ops: &[Op], index: &Index, universe: &Universe, v: &mut Vec<Violation>) {
    // Per conversation: ids in order and the suffix minimum of visibility,
    // so each read only walks the ids that can matter.
    let mut suffix: BTreeMap<u64, (Vec<u64>, Vec<Micros>)> = BTreeMap::new();
    for (conv, messages) in universe {
        let ids: Vec<u64> = messages.keys().copied().collect();
        let mut mins = vec![Micros::MAX; ids.len() + 1];
        for (k, id) in ids.iter().enumerate().rev() {
            mins[k] = mins[k + 1].min(messages[id].visible_since);
        }
        suffix.insert(*conv, (ids, mins));
    }
    for op in ops {
        let (Request::Read { conv, limit }, Outcome::Page { messages, more }) =
            (&op.request, &op.outcome)
        else {
            continue;
        };
        let stale = |detail: String, extra: Vec<Op>| Violation {
            check: "stale-read",
            detail,
            ops: [vec![op.clone()], extra].concat(),
        };
        if messages.windows(2).any(|p| p[0].id <= p[1].id) {
            v.push(stale(
                format!("conversation {conv}: the page is not newest-first"),
                Vec::new(),
            ));
        }
        if *more && messages.len() < *limit as usize {
            v.push(stale(
                format!(
                    "conversation {conv}: a short page ({} of {limit}) says more exist",
                    messages.len()
                ),
                Vec::new(),
            ));
        }
        let mut in_page: BTreeSet<u64> = BTreeSet::new();
        for m in messages {
            in_page.insert(m.id);
            match index.by_body.get(m.body.as_str()) {
                None => v.push(Violation {
                    check: "phantom",
                    detail: format!(
                        "conversation {conv}: a read returned {:?} (id {}), which no client sent",
                        m.body, m.id
                    ),
                    ops: vec![op.clone()],
                }),
                Some(&i) => {
                    let send = &index.sends[i];
                    if send.first_invoke > op.complete {
                        v.push(Violation {
                            check: "phantom",
                            detail: format!(
                                "a read that ended at {} ms returned {:?}, first sent at {} ms",
                                op.complete / 1000,
                                m.body,
                                send.first_invoke / 1000
                            ),
                            ops: [vec![op.clone()], send.ops()].concat(),
                        });
                    }
                    if index.deleted_before(m.id, op.invoke) {
                        v.push(Violation {
                            check: "resurrected",
                            detail: format!(
                                "a read begun at {} ms returned {:?} (id {}), whose delete was \
                                 acknowledged earlier",
                                op.invoke / 1000,
                                m.body,
                                m.id
                            ),
                            ops: [vec![op.clone()], index.delete_ops(m.id)].concat(),
                        });
                    }
                }
            }
        }
        let floor = if *more {
            messages.iter().map(|m| m.id).min().unwrap_or(0)
        } else {
            0
        };
        let Some((ids, mins)) = suffix.get(conv) else {
            continue;
        };
        let start = ids.partition_point(|id| *id < floor);
        let known = &universe[conv];
        for k in start..ids.len() {
            if mins[k] >= op.invoke {
                break;
            }
            let id = ids[k];
            let m = &known[&id];
            if m.visible_since >= op.invoke
                || in_page.contains(&id)
                || index.maybe_deleted_before(id, op.complete)
            {
                continue;
            }
            let extra = m.send.map(|i| index.sends[i].ops()).unwrap_or_default();
            v.push(stale(
                format!(
                    "conversation {conv}: a read from {} to {} ms missed {:?} (id {id}), visible \
                     since {} ms",
                    op.invoke / 1000,
                    op.complete / 1000,
                    m.body,
                    m.visible_since / 1000
                ),
                extra,
            ));
        }
    }
}

/// An acknowledged mark-read is never undone: the final read position is at
/// least the newest surviving message at or below the one marked.
fn check_read_up_to(ops: &[Op], finals: &FinalState, v: &mut Vec<Violation>) {
    let mut marked: BTreeMap<(String, u64), (u64, &Op)> = BTreeMap::new();
    for op in ops {
        if let (Request::MarkRead { conv, up_to }, Outcome::Done) = (&op.request, &op.outcome) {
            let e = marked
                .entry((op.user.clone(), *conv))
                .or_insert((*up_to, op));
            if *up_to > e.0 {
                *e = (*up_to, op);
            }
        }
    }
    for (replica, positions) in &finals.read_up_to {
        let Some(histories) = finals.histories.get(replica) else {
            continue;
        };
        for ((user, conv), (up_to, op)) in &marked {
            let floor = histories
                .get(conv)
                .and_then(|ms| ms.iter().rev().find(|m| m.id <= *up_to))
                .map_or(0, |m| m.id);
            let Some(&got) = positions.get(&(user.clone(), *conv)) else {
                continue;
            };
            if got < floor {
                v.push(Violation {
                    check: "read-up-to",
                    detail: format!(
                        "replica {replica}: {user} marked conversation {conv} read up to {up_to}, \
                         but reads up to {got} (expected at least {floor})"
                    ),
                    ops: vec![(*op).clone()],
                });
            }
        }
    }
}

fn availability(ops: &[Op], health: &HealthTimeline, end: Micros, grace_ms: u64) -> Availability {
    let intervals = health.healthy_intervals(end);
    let grace = grace_ms * 1000;
    let mut a = Availability {
        grace_ms,
        ..Availability::default()
    };
    for op in ops {
        let Some(&(s, e)) = intervals
            .iter()
            .find(|(s, e)| op.invoke >= *s && op.complete <= *e)
        else {
            continue;
        };
        let ok = op.outcome.is_ok() as u64;
        a.healthy_ops += 1;
        a.healthy_ok += ok;
        if op.invoke >= s + grace && e > s {
            a.settled_ops += 1;
            a.settled_ok += ok;
        }
    }
    let mut successes: Vec<Micros> = ops
        .iter()
        .filter(|o| o.outcome.is_ok())
        .map(|o| o.complete)
        .collect();
    successes.sort_unstable();
    let start = ops.iter().map(|o| o.invoke).min().unwrap_or(0);
    let mut prev = start;
    for &t in successes.iter().chain(std::iter::once(&end)) {
        if t.saturating_sub(prev) > a.longest_gap_ms * 1000 {
            a.longest_gap_ms = (t - prev) / 1000;
            a.longest_gap_at_ms = prev / 1000;
        }
        prev = prev.max(t);
    }
    for (s, e) in intervals {
        let mut prev = s;
        let inside = successes.iter().filter(|t| **t >= s && **t <= e);
        for &t in inside.chain(std::iter::once(&e)) {
            if t.saturating_sub(prev) > a.longest_healthy_gap_ms * 1000 {
                a.longest_healthy_gap_ms = (t - prev) / 1000;
                a.longest_healthy_gap_at_ms = prev / 1000;
            }
            prev = prev.max(t);
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, invoke: Micros, complete: Micros, request: Request, outcome: Outcome) -> Op {
        Op {
            id,
            client: 0,
            user: "u0".into(),
            invoke,
            complete,
            request,
            outcome,
        }
    }

    fn send(id: u64, t: (Micros, Micros), body: &str, rid: &str, outcome: Outcome) -> Op {
        op(
            id,
            t.0,
            t.1,
            Request::Send {
                conv: 1,
                body: body.into(),
                request_id: rid.into(),
                attempt: 1,
                reply_to: 0,
            },
            outcome,
        )
    }

    fn sent(id: u64, body: &str) -> Outcome {
        Outcome::Sent {
            message: seen(id, body),
        }
    }

    fn seen(id: u64, body: &str) -> Seen {
        Seen {
            edit: String::new(),
            reactions: Vec::new(),
            reply_to: 0,
            id,
            body: body.into(),
        }
    }

    fn finals(messages: Vec<Seen>) -> FinalState {
        let mut f = FinalState::default();
        for r in 1..=3 {
            f.histories.insert(r, [(1, messages.clone())].into());
            f.digests.insert(r, "d".into());
        }
        f
    }

    fn run(ops: &[Op], f: &FinalState) -> Report {
        check(ops, f, &HealthTimeline::default(), 1_000_000, 0)
    }

    fn edit(opid: u64, t: (Micros, Micros), text: &str, rid: &str, outcome: Outcome) -> Op {
        op(
            opid,
            t.0,
            t.1,
            Request::Edit {
                conv: 1,
                id: 1,
                text: text.into(),
                request_id: rid.into(),
                attempt: 1,
            },
            outcome,
        )
    }

    #[test]
    fn edits_lost_twice_applied_or_never_asked_for_are_found() {
        let base = || send(1, (0, 10), "a", "r1", sent(1, "a"));
        let acked = |text: &str| Outcome::Sent {
            message: Seen::of(1, text),
        };
        let unknown = || Outcome::Unknown {
            error: "timeout".into(),
        };
        let two = vec![
            base(),
            edit(2, (20, 30), "a~e1", "x1", acked("a~e1")),
            edit(3, (40, 50), "a~e2", "x2", unknown()),
            edit(4, (60, 70), "a~e3", "x3", acked("a~e3")),
        ];
        // The latest acknowledged edit shows, or a later maybe-applied one.
        assert!(run(&two, &finals(vec![Seen::of(1, "a~e3")])).ok());
        let mut later = two.clone();
        later.push(edit(5, (80, 90), "a~e4", "x4", unknown()));
        assert!(run(&later, &finals(vec![Seen::of(1, "a~e4")])).ok());
        // An unknown edit begun before the acknowledged one may have
        // applied after it (still in flight).
        assert!(run(&two, &finals(vec![Seen::of(1, "a~e2")])).ok());
        // e1 shows: e3, acknowledged after e1 was, is lost (or e1 applied
        // twice).
        let r = run(&two, &finals(vec![Seen::of(1, "a~e1")]));
        assert_eq!(r.count("lost"), 1, "{r}");
        // The original text: every acknowledged edit lost.
        let r = run(&two, &finals(vec![seen(1, "a")]));
        assert_eq!(r.count("lost"), 1, "{r}");
        // A text no edit asked for, and one whose edit was refused.
        let r = run(&two, &finals(vec![Seen::of(1, "a~zz")]));
        assert_eq!(r.count("phantom"), 1, "{r}");
        let mut refused = two.clone();
        refused.push(edit(
            5,
            (80, 90),
            "a~e5",
            "x5",
            Outcome::Failed {
                error: "PERMISSION_DENIED".into(),
            },
        ));
        let r = run(&refused, &finals(vec![Seen::of(1, "a~e5")]));
        assert_eq!(r.count("phantom"), 1, "{r}");
        // Replicas disagreeing on the final text.
        let mut f = finals(vec![Seen::of(1, "a~e3")]);
        f.histories
            .insert(3, [(1, vec![Seen::of(1, "a~e2")])].into());
        assert_eq!(run(&two, &f).count("divergent"), 1);
        // An acknowledgement showing another text.
        let mut wrong = two.clone();
        wrong.push(edit(5, (80, 90), "a~e6", "x6", acked("a~e7")));
        let r = run(&wrong, &finals(vec![Seen::of(1, "a~e6")]));
        assert_eq!(r.count("divergent"), 1, "{r}");
    }

    #[test]
    fn a_reply_to_the_wrong_message_is_found() {
        let reply = |rid: &str, reply_to, outcome| {
            let mut o = send(2, (10, 20), "b", rid, outcome);
            if let Request::Send { reply_to: r, .. } = &mut o.request {
                *r = reply_to;
            }
            o
        };
        let answering = |id| Seen {
            reply_to: id,
            ..seen(2, "b")
        };
        let ops = |shown| {
            vec![
                send(1, (0, 5), "a", "r1", sent(1, "a")),
                reply(
                    "r2",
                    1,
                    Outcome::Sent {
                        message: answering(shown),
                    },
                ),
            ]
        };
        let ok = run(&ops(1), &finals(vec![seen(1, "a"), answering(1)]));
        assert_eq!(ok.count("reply"), 0, "{ok}");
        assert!(ok.violations.is_empty(), "{ok}");
        // The answer and the final state lost the reply.
        let lost = run(&ops(0), &finals(vec![seen(1, "a"), answering(0)]));
        assert_eq!(lost.count("reply"), 2, "{lost}");
        // A reply never asked for (the final state only).
        let phantom = run(&ops(1), &finals(vec![seen(1, "a"), answering(3)]));
        assert_eq!(phantom.count("reply"), 1, "{phantom}");
    }

    #[test]
    fn a_lost_or_doubled_reaction_toggle_is_found() {
        let with = |emoji: Option<&str>| Seen {
            reactions: emoji
                .map(|e| vec![(e.to_string(), vec!["u".to_string()])])
                .unwrap_or_default(),
            ..seen(1, "a")
        };
        let toggle = |opid, t: (Micros, Micros), rid: &str, outcome| {
            let mut o = op(
                opid,
                t.0,
                t.1,
                Request::React {
                    conv: 1,
                    id: 1,
                    emoji: "+1".into(),
                    request_id: rid.into(),
                    attempt: 1,
                },
                outcome,
            );
            o.user = "u".into();
            o
        };
        let shown = |emoji| Outcome::Sent {
            message: with(emoji),
        };
        let ops = vec![
            send(1, (0, 10), "a", "r1", sent(1, "a")),
            toggle(2, (20, 30), "x1", shown(Some("+1"))),
            toggle(3, (40, 50), "x2", shown(None)),
        ];
        assert!(run(&ops, &finals(vec![with(None)])).ok());
        let r = run(&ops, &finals(vec![with(Some("+1"))]));
        assert_eq!(r.count("lost"), 1, "{r}");
        // A toggle that may or may not have applied: no verdict.
        let mut unsure = ops.clone();
        unsure.push(toggle(
            4,
            (60, 70),
            "x3",
            Outcome::Unknown {
                error: "timeout".into(),
            },
        ));
        assert!(run(&unsure, &finals(vec![with(Some("+1"))])).ok());
    }

    #[test]
    fn a_clean_history_passes() {
        let ops = vec![
            send(1, (0, 10), "a", "r1", sent(1, "a")),
            send(2, (20, 30), "b", "r2", sent(2, "b")),
            op(
                3,
                40,
                50,
                Request::Read { conv: 1, limit: 10 },
                Outcome::Page {
                    messages: vec![seen(2, "b"), seen(1, "a")],
                    more: false,
                },
            ),
        ];
        let r = run(&ops, &finals(vec![seen(1, "a"), seen(2, "b")]));
        assert!(r.ok(), "{r}");
    }

    #[test]
    fn finds_lost_duplicated_phantom_and_divergent() {
        let ops = vec![
            send(1, (0, 10), "a", "r1", sent(1, "a")),
            send(2, (20, 30), "b", "r2", sent(2, "b")),
        ];
        let mut f = finals(vec![seen(2, "b"), seen(3, "b"), seen(4, "zzz")]);
        f.histories
            .get_mut(&3)
            .unwrap()
            .insert(1, vec![seen(2, "b")]);
        f.digests.insert(3, "other".into());
        let r = run(&ops, &f);
        assert_eq!(r.count("lost"), 1, "{r}");
        assert!(r.count("duplicated") >= 1, "{r}");
        assert_eq!(r.count("phantom"), 1, "{r}");
        assert_eq!(r.count("divergent"), 2, "{r}");
    }

    #[test]
    fn finds_real_time_reorders_and_stale_reads() {
        let ops = vec![
            send(1, (0, 10), "a", "r1", sent(5, "a")),
            send(2, (20, 30), "b", "r2", sent(4, "b")),
            op(
                3,
                40,
                50,
                Request::Read { conv: 1, limit: 10 },
                Outcome::Page {
                    messages: vec![seen(5, "a")],
                    more: false,
                },
            ),
        ];
        let r = run(&ops, &finals(vec![seen(4, "b"), seen(5, "a")]));
        assert_eq!(r.count("reordered"), 1, "{r}");
        assert_eq!(r.count("stale-read"), 1, "{r}");
    }

    #[test]
    fn retries_and_deletes_are_understood() {
        let ops = vec![
            send(
                1,
                (0, 10),
                "a",
                "r1",
                Outcome::Unknown {
                    error: "timeout".into(),
                },
            ),
            send(2, (20, 30), "a", "r1", sent(1, "a")),
            send(3, (40, 50), "b", "r2", sent(2, "b")),
            op(
                4,
                60,
                70,
                Request::Delete {
                    conv: 1,
                    ids: vec![2],
                },
                Outcome::Done,
            ),
            op(
                5,
                80,
                90,
                Request::Read { conv: 1, limit: 10 },
                Outcome::Page {
                    messages: vec![seen(2, "b"), seen(1, "a")],
                    more: false,
                },
            ),
        ];
        let r = run(&ops, &finals(vec![seen(1, "a")]));
        assert_eq!(r.count("resurrected"), 1, "{r}");
        assert_eq!(r.violations.len(), 1, "{r}");
        assert_eq!(r.tallies["send"].ok, 2);
        assert_eq!(r.tallies["send-attempt"].unknown, 1);
    }

    #[test]
    fn availability_measures_gaps_inside_healthy_intervals() {
        let ops = vec![
            send(1, (0, 1_000), "a", "r1", sent(1, "a")),
            send(
                2,
                (1_000, 5_000_000),
                "b",
                "r2",
                Outcome::Unknown { error: "x".into() },
            ),
            send(3, (5_000_000, 5_100_000), "c", "r3", sent(2, "c")),
        ];
        let health = HealthTimeline {
            changes: vec![(0, true), (2_000_000, false), (4_000_000, true)],
        };
        let a = availability(&ops, &health, 6_000_000, 500);
        assert_eq!((a.healthy_ops, a.healthy_ok), (2, 2));
        assert_eq!(a.longest_gap_ms, 5099);
        assert_eq!(a.longest_healthy_gap_ms, 1999);
    }
}
