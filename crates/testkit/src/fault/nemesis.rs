//! The nemesis: a seeded random schedule of faults, applied to real `chatd`
//! processes and to the proxies between them.
//!
//! The schedule is a pure function of the seed ([`Schedule::generate`]).
//! Faults aimed at "the leader" are resolved when they fire (the leader is
//! whoever the replicas name then), so the events actually injected are
//! recorded separately, with the replica ids they hit.
//!
//! Faults run one after another: apply, hold, heal, quiet gap. Each one
//! heals itself, so at every gap the cluster is whole again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::local_cluster::Cluster;
use raftchat_proto::StatusReply;

use super::history::{Clock, Micros, NemesisEvent};
use super::proxy::{Flow, Mesh};
use raftchat_server::storage::power_cut::{self, NoCut};

/// Who a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// The replica the cluster names as leader when the fault fires.
    Leader,
    Replica(u64),
}

impl fmt::Display for Victim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Victim::Leader => f.write_str("leader"),
            Victim::Replica(id) => write!(f, "replica {id}"),
        }
    }
}

/// One kind of fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, restart from storage after the hold.
    Kill(Victim),
    /// SIGKILL the leader and restart it at once, before anyone campaigns:
    /// openraft 0.9 resumes its term without an election, its commit index
    /// back at what it had applied (see `raftchat_server::raft::consensus::ReadFloor`).
    BounceLeader,
    /// SIGSTOP for the hold (longer than an election timeout), SIGCONT.
    Pause(Victim),
    /// Every flow to and from the leader lost.
    IsolateLeader,
    /// These replicas (a minority) cut off from the rest.
    Split { minority: Vec<u64> },
    /// Two sides that cannot talk, and one replica that talks to both.
    Bridge {
        left: Vec<u64>,
        bridge: u64,
        right: Vec<u64>,
    },
    /// Bytes from `from` to `to` held (delayed) while `to → from` flows.
    OneWay { from: Victim, to: u64 },
    /// Every connection dialled to the victim held, both ways, while the
    /// victim's own connections flow: a firewall dropping packets to its
    /// port (an asymmetric partition).
    HoldDialsTo(Victim),
    /// A follower loses the log records it never acknowledged, as a power
    /// cut loses unsynced writes (see [`Nemesis::lose_unsynced_tail`]).
    LoseUnsynced,
    /// The leader loses its unsynced log tail and reboots (see
    /// [`Nemesis::power_cut_leader`]).
    PowerCutLeader,
}

impl Fault {
    /// The name events are counted under.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::BounceLeader => "bounce-leader",
            Fault::Pause(_) => "pause",
            Fault::IsolateLeader => "isolate-leader",
            Fault::Split { .. } => "split",
            Fault::Bridge { .. } => "bridge",
            Fault::OneWay { .. } => "one-way",
            Fault::HoldDialsTo(_) => "hold-dials",
            Fault::LoseUnsynced => "lose-unsynced",
            Fault::PowerCutLeader => "power-cut-leader",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(v) => write!(f, "kill -9 {v}"),
            Fault::BounceLeader => f.write_str("kill -9 the leader and restart it at once"),
            Fault::Pause(v) => write!(f, "SIGSTOP {v}"),
            Fault::IsolateLeader => f.write_str("isolate the leader"),
            Fault::Split { minority } => write!(f, "split off {minority:?}"),
            Fault::Bridge {
                left,
                bridge,
                right,
            } => write!(f, "bridge {left:?} <-{bridge}-> {right:?}"),
            Fault::OneWay { from, to } => write!(f, "hold bytes {from} -> {to}"),
            Fault::HoldDialsTo(v) => write!(f, "hold connections dialled to {v}"),
            Fault::LoseUnsynced => f.write_str("lose a follower's unsynced log tail"),
            Fault::PowerCutLeader => f.write_str("cut the leader's power"),
        }
    }
}

/// One step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub fault: Fault,
    /// How long the fault lasts.
    pub hold: Duration,
    /// Quiet time after healing, before the next fault.
    pub gap: Duration,
}

/// The faults of a run, from its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Enough steps to fill `duration`, for a cluster of `replicas` ids
    /// `1..=replicas`. The leader is hit more often than any other replica.
    pub fn generate(seed: u64, replicas: u64, duration: Duration) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let ids: Vec<u64> = (1..=replicas).collect();
        let minority = (replicas as usize - 1) / 2;
        let mut steps = Vec::new();
        let mut total = Duration::ZERO;
        while total < duration {
            let any = |rng: &mut StdRng| Victim::Replica(ids[rng.gen_range(0..ids.len())]);
            let mut shuffled = ids.clone();
            shuffled.shuffle(&mut rng);
            let roll = rng.gen_range(0..100);
            let (fault, hold_ms) = match roll {
                0..=9 => (Fault::Kill(Victim::Leader), rng.gen_range(300..3000)),
                10..=14 => (Fault::BounceLeader, 0),
                15..=24 => (Fault::Kill(any(&mut rng)), rng.gen_range(300..3000)),
                25..=34 => (Fault::Pause(Victim::Leader), rng.gen_range(400..3000)),
                35..=39 => (Fault::Pause(any(&mut rng)), rng.gen_range(400..3000)),
                40..=51 => (Fault::IsolateLeader, rng.gen_range(500..4000)),
                52..=61 => (
                    Fault::Split {
                        minority: sorted(shuffled[..minority].to_vec()),
                    },
                    rng.gen_range(500..4000),
                ),
                62..=71 if replicas >= 3 => {
                    let half = (shuffled.len() - 1) / 2;
                    (
                        Fault::Bridge {
                            left: sorted(shuffled[..half].to_vec()),
                            bridge: shuffled[half],
                            right: sorted(shuffled[half + 1..].to_vec()),
                        },
                        rng.gen_range(500..4000),
                    )
                }
                72..=79 => (
                    Fault::OneWay {
                        from: Victim::Leader,
                        to: shuffled[0],
                    },
                    rng.gen_range(500..3000),
                ),
                80..=82 => (
                    Fault::OneWay {
                        from: Victim::Replica(shuffled[0]),
                        to: shuffled[1],
                    },
                    rng.gen_range(500..3000),
                ),
                83..=85 => (
                    Fault::HoldDialsTo(Victim::Leader),
                    rng.gen_range(1000..6000),
                ),
                86..=92 => (Fault::LoseUnsynced, rng.gen_range(300..1500)),
                _ => (Fault::PowerCutLeader, rng.gen_range(300..1500)),
            };
            let step = Step {
                fault,
                hold: Duration::from_millis(hold_ms),
                gap: Duration::from_millis(rng.gen_range(300..2000)),
            };
            total += step.hold + step.gap;
            steps.push(step);
        }
        Self { seed, steps }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nemesis schedule (seed {}):", self.seed)?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(
                f,
                "  {i:3}. {} for {} ms, then {} ms quiet",
                s.fault,
                s.hold.as_millis(),
                s.gap.as_millis()
            )?;
        }
        Ok(())
    }
}

fn sorted(mut ids: Vec<u64>) -> Vec<u64> {
    ids.sort_unstable();
    ids
}

/// When a majority of replicas was running, unpaused and fully connected.
#[derive(Debug, Clone, Default)]
pub struct HealthTimeline {
    /// `(time, healthy)` at every change, in time order.
    pub changes: Vec<(Micros, bool)>,
}

impl HealthTimeline {
    /// The healthy intervals up to `end`.
    pub fn healthy_intervals(&self, end: Micros) -> Vec<(Micros, Micros)> {
        let mut out = Vec::new();
        let mut since = None;
        for &(at, healthy) in &self.changes {
            match (healthy, since) {
                (true, None) => since = Some(at),
                (false, Some(s)) => {
                    out.push((s, at));
                    since = None;
                }
                _ => {}
            }
        }
        if let Some(s) = since {
            out.push((s, end.max(s)));
        }
        out
    }
}

/// Applies faults to a cluster and its proxy mesh, recording events.
pub struct Nemesis<'a> {
    cluster: &'a mut Cluster,
    mesh: &'a Mesh,
    clock: Clock,
    rng: StdRng,
    paused: BTreeSet<u64>,
    pub events: Vec<NemesisEvent>,
    pub health: HealthTimeline,
    /// Print events to stderr as they happen.
    pub verbose: bool,
}

impl<'a> Nemesis<'a> {
    pub fn new(cluster: &'a mut Cluster, mesh: &'a Mesh, clock: Clock, seed: u64) -> Self {
        let mut nemesis = Self {
            cluster,
            mesh,
            clock,
            // Independent of the schedule's stream, so resolving victims
            // does not change the schedule.
            rng: StdRng::seed_from_u64(seed.rotate_left(17) ^ 0x5EED),
            paused: BTreeSet::new(),
            events: Vec::new(),
            health: HealthTimeline::default(),
            verbose: false,
        };
        nemesis.note_health();
        nemesis
    }

    fn event(&mut self, kind: &str, detail: String) {
        let at = self.clock.now();
        if self.verbose {
            eprintln!("{:>9} ms  nemesis {kind}: {detail}", at / 1000);
        }
        self.events.push(NemesisEvent {
            at,
            kind: kind.to_string(),
            detail,
        });
        self.note_health();
    }

    /// Whether some majority of replicas is running, unpaused and connected
    /// both ways between every pair.
    pub fn majority_healthy(&self) -> bool {
        let ids: Vec<u64> = self.cluster.replicas.keys().copied().collect();
        let live: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| self.cluster.is_running(*id) && !self.paused.contains(id))
            .collect();
        let need = ids.len() / 2 + 1;
        (0u32..1 << live.len()).any(|mask| {
            let set: Vec<u64> = (0..live.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| live[i])
                .collect();
            set.len() >= need
                && set.iter().all(|a| {
                    set.iter()
                        .all(|b| a == b || self.mesh.get(*a, *b) == Flow::Open)
                })
        })
    }

    fn note_health(&mut self) {
        let healthy = self.majority_healthy();
        if self.health.changes.last().map(|c| c.1) != Some(healthy) {
            self.health.changes.push((self.clock.now(), healthy));
        }
    }

    /// Runs the schedule's steps until `until` (each started step finishes
    /// and heals).
    pub async fn run(&mut self, schedule: &Schedule, until: Micros) {
        for step in &schedule.steps {
            if self.clock.now() >= until {
                break;
            }
            self.apply(step).await;
            tokio::time::sleep(step.gap).await;
        }
    }

    async fn apply(&mut self, step: &Step) {
        let kind = step.fault.kind();
        match &step.fault {
            Fault::Kill(victim) => {
                let id = self.resolve(*victim).await;
                self.cluster.kill(id);
                self.event(kind, format!("kill -9 replica {id} (aimed at {victim})"));
                tokio::time::sleep(step.hold).await;
                self.cluster.start_replica(id);
                self.event("heal", format!("restart replica {id}"));
            }
            Fault::BounceLeader => {
                let detail = self.bounce_leader().await;
                self.event(kind, detail);
            }
            Fault::Pause(victim) => {
                let id = self.resolve(*victim).await;
                self.cluster.pause(id, true);
                self.paused.insert(id);
                self.event(kind, format!("SIGSTOP replica {id} (aimed at {victim})"));
                tokio::time::sleep(step.hold).await;
                self.cluster.pause(id, false);
                self.paused.remove(&id);
                self.event("heal", format!("SIGCONT replica {id}"));
            }
            Fault::IsolateLeader => {
                let id = self.resolve(Victim::Leader).await;
                let others: Vec<u64> = self.others(&[id]);
                self.mesh.partition(&[id], &others);
                self.event(kind, format!("isolate leader {id} from {others:?}"));
                self.hold_then_heal(step.hold).await;
            }
            Fault::Split { minority } => {
                let rest = self.others(minority);
                self.mesh.partition(minority, &rest);
                self.event(kind, format!("partition {minority:?} | {rest:?}"));
                self.hold_then_heal(step.hold).await;
            }
            Fault::Bridge {
                left,
                bridge,
                right,
            } => {
                self.mesh.partition(left, right);
                self.event(
                    kind,
                    format!("partition {left:?} | {right:?}, replica {bridge} sees both"),
                );
                self.hold_then_heal(step.hold).await;
            }
            Fault::OneWay { from, to } => {
                let from_id = self.resolve(*from).await;
                let to = if *to == from_id {
                    self.others(&[from_id])[0]
                } else {
                    *to
                };
                self.mesh.set(from_id, to, Flow::Held);
                self.event(
                    kind,
                    format!(
                        "hold bytes {from_id} -> {to}, {to} -> {from_id} flows (aimed at {from})"
                    ),
                );
                self.hold_then_heal(step.hold).await;
            }
            Fault::HoldDialsTo(victim) => {
                let id = self.resolve(*victim).await;
                self.mesh.hold_dials_to(id);
                self.event(
                    kind,
                    format!(
                        "hold connections dialled to replica {id}; its own flow (aimed at {victim})"
                    ),
                );
                self.hold_then_heal(step.hold).await;
            }
            Fault::LoseUnsynced => {
                let detail = self.lose_unsynced_tail(step.hold).await;
                self.event(kind, detail);
            }
            Fault::PowerCutLeader => {
                let detail = self.power_cut_leader(step.hold).await;
                self.event(kind, detail);
            }
        }
    }

    async fn hold_then_heal(&mut self, hold: Duration) {
        tokio::time::sleep(hold).await;
        let broken = self.mesh.broken();
        self.mesh.heal();
        self.event("heal", format!("open every link (were {broken:?})"));
    }

    fn others(&self, ids: &[u64]) -> Vec<u64> {
        self.cluster
            .replicas
            .keys()
            .copied()
            .filter(|id| !ids.contains(id))
            .collect()
    }

    /// Statuses of the running, unpaused replicas.
    async fn statuses(&self) -> BTreeMap<u64, StatusReply> {
        let mut out = BTreeMap::new();
        for id in self.cluster.running() {
            if self.paused.contains(&id) {
                continue;
            }
            if let Some(s) = self.cluster.status(id, false).await {
                out.insert(id, s);
            }
        }
        out
    }

    /// The leader most replicas name (and that is running), if any.
    async fn current_leader(&self) -> Option<(u64, u64)> {
        let statuses = self.statuses().await;
        let mut votes: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for s in statuses.values() {
            if let Some(l) = statuses.get(&s.leader_id) {
                if l.role == "leader" {
                    *votes.entry((s.leader_id, l.term)).or_default() += 1;
                }
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(leader, _)| leader)
    }

    /// The replica a victim names now; a random one when no leader is known.
    async fn resolve(&mut self, victim: Victim) -> u64 {
        match victim {
            Victim::Replica(id) => id,
            Victim::Leader => match self.current_leader().await {
                Some((id, _)) => id,
                None => {
                    let ids: Vec<u64> = self.cluster.replicas.keys().copied().collect();
                    ids[self.rng.gen_range(0..ids.len())]
                }
            },
        }
    }

    /// [`Fault::BounceLeader`]; says whether the leader resumed its term.
    async fn bounce_leader(&mut self) -> String {
        let Some((id, term)) = self.current_leader().await else {
            return "no leader known; nothing bounced".into();
        };
        self.cluster.kill(id);
        self.cluster.start_replica(id);
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < until {
            if let Some(s) = self.cluster.status(id, false).await {
                return format!(
                    "kill -9 leader {id} (term {term}) and restart it at once: now {} in term {}",
                    s.role, s.term
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        format!("kill -9 leader {id} (term {term}) and restart it at once: no status for 2 s")
    }

    /// The current leader and its term, if the whole cluster is up,
    /// unpaused and connected; otherwise why a fault that needs that is
    /// skipped.
    async fn whole_cluster_leader(&self) -> Result<(u64, u64), String> {
        let whole = self.mesh.all_open()
            && self.paused.is_empty()
            && self.cluster.running().len() == self.cluster.replicas.len();
        let Some(found) = self.current_leader().await else {
            return Err("skipped: no leader".into());
        };
        if !whole {
            return Err("skipped: the cluster is not whole".into());
        }
        Ok(found)
    }

    /// Cuts a stopped replica's log after index `keep` (see [`power_cut`])
    /// and says what went.
    fn cut_tail(&mut self, dir: &std::path::Path, keep: u64) -> String {
        match power_cut::cut_after(dir, keep, |len| self.rng.gen_range(0..len)) {
            Ok(Ok(cut)) => format!(
                "cut records {}..={} (zeroed bytes {}..{} of {})",
                cut.first_dropped,
                cut.last_dropped,
                cut.cut_at,
                cut.file_len,
                cut.segment.display()
            ),
            Ok(Err(NoCut::NothingAfter { last_index })) => {
                format!("nothing after {keep} to cut (last record {last_index:?})")
            }
            Ok(Err(NoCut::WholeSegment { first_index })) => format!(
                "the tail after {keep} spans a whole segment (from {first_index}); nothing cut"
            ),
            Err(e) => format!("cannot cut the log: {e}; nothing cut"),
        }
    }

    /// Simulates a power cut on the leader `L`. A leader reports its own
    /// appends flushed before their `fdatasync` (see
    /// `raftchat_server::storage::durability`), so a power cut can take entries it
    /// already counted toward a commit; what it must keep is everything it
    /// applied (only synced entries are applied, and so acknowledged) and
    /// every commit it told followers of (capped at its synced entries).
    ///
    /// 1. With the whole cluster up and connected and a leader `L`, every
    ///    flow to and from `L` is lost, so `L` commits nothing more; after a
    ///    pause it has applied everything it committed, which covers every
    ///    commit index it sent. It reports its applied index `A`.
    /// 2. `L` is killed and its last segment cut after `max(A, snapshot
    ///    index)`. That may cut entries `L` had synced as well; nobody acted
    ///    on those, so it is a harsher test rather than a wrong one.
    /// 3. Its boot id is forgotten, as a reboot would change it, so it does
    ///    not resume leading its old term. After the hold it restarts and
    ///    the links heal.
    pub async fn power_cut_leader(&mut self, hold: Duration) -> String {
        let (leader, term) = match self.whole_cluster_leader().await {
            Ok(found) => found,
            Err(skipped) => return skipped,
        };
        for k in self.others(&[leader]) {
            self.mesh.set_both(leader, k, Flow::Lost);
        }
        self.note_health();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let view = self.cluster.status(leader, false).await;
        self.cluster.kill(leader);
        let dir = self.cluster.storage_dir(leader);
        let detail = match view {
            Some(own) => {
                let keep = own.applied_index.max(own.snapshot_index);
                format!(
                    "leader {leader} (term {term}, now {} in term {}) applied {}; {}",
                    own.role,
                    own.term,
                    own.applied_index,
                    self.cut_tail(&dir, keep)
                )
            }
            None => format!("leader {leader} did not answer; killed only, nothing cut"),
        };
        let detail = match power_cut::forget_boot(&dir) {
            Ok(()) => format!("{detail}; rebooted"),
            Err(e) => format!("{detail}; cannot forget the boot id: {e}"),
        };
        tokio::time::sleep(hold).await;
        for k in self.others(&[leader]) {
            self.mesh.set_both(leader, k, Flow::Open);
        }
        self.cluster.start_replica(leader);
        self.note_health();
        detail
    }

    /// Simulates a power cut on a follower `j`, losing only log records it
    /// provably never acknowledged:
    ///
    /// 1. With the whole cluster up and connected and a leader `L` in term
    ///    `T`, every byte *from* `j` is lost for a while: `j` keeps
    ///    receiving and appending entries but its acknowledgements vanish.
    /// 2. Then bytes *to* `j` are lost too, so nothing reaches `j`; after a
    ///    pause every acknowledgement `j` sent before step 1 has been
    ///    processed, and `L`, still leader in term `T`, reports the highest
    ///    index `M` it knows `j` holds. `L` received every acknowledgement
    ///    `j` sent in term `T` (nothing else reached anyone), and before
    ///    term `T` `L` had replicated to `j` while `j` was connected, so
    ///    entries past `M` were never counted toward any commit.
    /// 3. `j` is killed and its last segment cut after
    ///    `max(M, applied index, snapshot index)` (what `j` derived from
    ///    entries it applied must survive a real power cut as well).
    ///
    /// When a precondition fails (the cluster is not whole, the leader
    /// changed), nothing is cut and the replica is only killed and
    /// restarted; the event says so.
    pub async fn lose_unsynced_tail(&mut self, hold: Duration) -> String {
        let (leader, term) = match self.whole_cluster_leader().await {
            Ok(found) => found,
            Err(skipped) => return skipped,
        };
        let followers = self.others(&[leader]);
        let j = followers[self.rng.gen_range(0..followers.len())];
        for &k in &followers {
            if k != j {
                self.mesh.set(j, k, Flow::Lost);
            }
        }
        self.mesh.set(j, leader, Flow::Lost);
        self.note_health();
        tokio::time::sleep(hold).await;
        for k in self.others(&[j]) {
            self.mesh.set(k, j, Flow::Lost);
        }
        self.note_health();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let leader_view = self.cluster.status(leader, false).await;
        let own_view = self.cluster.status(j, false).await;
        self.cluster.kill(j);
        let matched = leader_view.as_ref().and_then(|s| {
            (s.role == "leader" && s.term == term)
                .then(|| s.peers.iter().find(|p| p.id == j && p.has_match))
                .flatten()
                .map(|p| p.match_index)
        });
        let dir = self.cluster.storage_dir(j);
        let detail = match (matched, own_view) {
            (Some(m), Some(own)) => {
                let keep = m.max(own.applied_index).max(own.snapshot_index);
                format!(
                    "replica {j}: leader {leader} (term {term}) matched {m}, applied {}; {}",
                    own.applied_index,
                    self.cut_tail(&dir, keep)
                )
            }
            _ => format!(
                "replica {j}: leader {leader} changed or did not answer; killed only, nothing cut"
            ),
        };
        for k in self.others(&[j]) {
            self.mesh.set_both(j, k, Flow::Open);
        }
        self.cluster.start_replica(j);
        detail
    }

    /// Heals everything: thaws paused replicas, restarts dead ones, opens
    /// every link.
    pub fn heal_all(&mut self) {
        for id in std::mem::take(&mut self.paused) {
            self.cluster.pause(id, false);
        }
        let ids: Vec<u64> = self.cluster.replicas.keys().copied().collect();
        for id in ids {
            if !self.cluster.is_running(id) {
                self.cluster.start_replica(id);
            }
        }
        self.mesh.heal();
        self.event(
            "heal",
            "final heal: everything running and connected".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_a_function_of_the_seed() {
        let a = Schedule::generate(7, 5, Duration::from_secs(60));
        let b = Schedule::generate(7, 5, Duration::from_secs(60));
        let c = Schedule::generate(8, 5, Duration::from_secs(60));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let total: Duration = a.steps.iter().map(|s| s.hold + s.gap).sum();
        assert!(total >= Duration::from_secs(60));
    }

    #[test]
    fn schedules_cover_every_fault_kind() {
        let s = Schedule::generate(1, 5, Duration::from_secs(600));
        let kinds: BTreeSet<&str> = s.steps.iter().map(|s| s.fault.kind()).collect();
        assert_eq!(kinds.len(), 10, "{kinds:?}");
        for step in &s.steps {
            if let Fault::Pause(_) = step.fault {
                assert!(step.hold >= Duration::from_millis(400), "{step:?}");
            }
            if let Fault::Split { minority } = &step.fault {
                assert_eq!(minority.len(), 2);
            }
        }
    }

    #[test]
    fn healthy_intervals_close_at_the_end() {
        let t = HealthTimeline {
            changes: vec![(0, true), (10, false), (20, true)],
        };
        assert_eq!(t.healthy_intervals(30), vec![(0, 10), (20, 30)]);
    }
}
