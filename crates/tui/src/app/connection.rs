//! What the status line says about the cluster, derived only from what
//! the client library and the replicas report.

use std::collections::HashMap;
use std::time::Duration;

use crate::model::{ConnectionState, ReplicaReport};

/// How long "leader changed" stays on the status line.
pub const LEADER_CHANGE_SHOWN_MS: u64 = 3_000;
/// The replica in use is asked every 500 ms (`net.rs`); silent for longer
/// than this, it is not called connected (a stopped process keeps its
/// connections open, so nothing else would tell for seconds).
pub const SILENCE_MS: u64 = 1_200;

/// The subscription stream's health, as the client library reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StreamLink {
    #[default]
    Off,
    Live {
        server: String,
    },
    Reconnecting {
        server: String,
        attempt: u32,
        error: String,
    },
}

/// The one-word state on the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Nothing answered yet.
    Connecting,
    Connected,
    /// Connected, and the leader changed moments ago.
    LeaderChanged,
    /// Failing over; `next` is the replica tried next.
    Reconnecting {
        next: Option<String>,
        error: Option<String>,
    },
    /// Writes cannot be committed: too few replicas answer or none knows a leader.
    NoQuorum,
    /// The replica in use has not answered for `for_ms`.
    Silent {
        server: String,
        for_ms: u64,
    },
}

/// Everything the app knows about its link to the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub info: Option<ConnectionState>,
    pub stream: StreamLink,
    /// A call failed with UNAVAILABLE, or the replicas' own reports show no
    /// majority with a leader. Cleared by the next success.
    pub quorum_lost: bool,
    pub leader_changed_at_ms: Option<u64>,
    /// The current leader as the replicas report it (before the first
    /// status poll: the client library's latest hint). `None` while no
    /// reachable replica knows one (election in progress, no quorum).
    pub leader: Option<(u64, String)>,
    /// The last leader id ever seen, to notice changes across elections.
    last_leader_id: Option<u64>,
    /// A status poll came back: replica reports now decide the leader.
    polled: bool,
    /// The term reported by the replica we talk to (or the highest seen).
    pub term: Option<u64>,
    /// When each replica last answered (unix ms) and its round trip then,
    /// by address: from the probe and from the library's own calls.
    answers: HashMap<String, (u64, Duration)>,
    /// The replica the probe asked last (the one in use, before any call
    /// of our own has named it).
    probed: Option<String>,
}

impl Connection {
    pub fn state(&self, now_ms: u64) -> LinkState {
        if self.quorum_lost {
            return LinkState::NoQuorum;
        }
        if let Some(info) = self.info.as_ref().filter(|i| i.reconnecting) {
            return LinkState::Reconnecting {
                next: info.next_server.clone(),
                error: info.last_error.clone(),
            };
        }
        if let StreamLink::Reconnecting { server, error, .. } = &self.stream {
            return LinkState::Reconnecting {
                next: Some(server.clone()),
                error: Some(error.clone()),
            };
        }
        if let Some(server) = self.server() {
            if let Some(for_ms) = self
                .silence_ms(server, now_ms)
                .filter(|ms| *ms > SILENCE_MS)
            {
                return LinkState::Silent {
                    server: server.to_string(),
                    for_ms,
                };
            }
        }
        let changed_recently = self
            .leader_changed_at_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < LEADER_CHANGE_SHOWN_MS);
        match &self.info {
            _ if changed_recently => LinkState::LeaderChanged,
            Some(info) if info.last_rtt.is_some() => LinkState::Connected,
            _ if matches!(self.stream, StreamLink::Live { .. }) => LinkState::Connected,
            // The status poll answered with a majority and a leader (else
            // `quorum_lost`): connected, even before any call of our own
            // (on the sign-in screen there is none).
            _ if self.polled => LinkState::Connected,
            _ => LinkState::Connecting,
        }
    }

    /// The replica in use: the library's latest, else the one probed.
    pub fn server(&self) -> Option<&str> {
        self.info
            .as_ref()
            .map(|i| i.server.as_str())
            .filter(|s| !s.is_empty())
            .or(self.probed.as_deref())
    }

    /// How long `server` has not answered; `None` if it never did.
    pub fn silence_ms(&self, server: &str, now_ms: u64) -> Option<u64> {
        self.answers
            .get(server)
            .map(|(at, _)| now_ms.saturating_sub(*at))
    }

    /// The round trip of the replica in use, while it answers (the library
    /// keeps its last one for good, however old).
    pub fn fresh_rtt(&self, now_ms: u64) -> Option<Duration> {
        let (at, rtt) = self.answers.get(self.server()?)?;
        (now_ms.saturating_sub(*at) <= SILENCE_MS).then_some(*rtt)
    }

    /// The probe asked `server`: it answered in `rtt`, or not (`None`).
    pub fn observe_answer(&mut self, server: &str, rtt: Option<Duration>, now_ms: u64) {
        if let Some(rtt) = rtt {
            self.answers.insert(server.to_string(), (now_ms, rtt));
        }
        self.probed = Some(server.to_string());
    }

    /// The client library published a new connection state.
    pub fn observe(&mut self, info: ConnectionState, now_ms: u64) {
        // A new round trip means an answer now; the state is also
        // republished for a mere leader hint, with the old one.
        let previous_rtt = self.info.as_ref().and_then(|i| i.last_rtt);
        if let Some(rtt) = info
            .last_rtt
            .filter(|_| !info.reconnecting && info.last_rtt != previous_rtt)
        {
            self.answers.insert(info.server.clone(), (now_ms, rtt));
        }
        // Library hints are sticky (the last one seen, however old), so
        // they only stand in until the replicas' own reports arrive.
        if let Some(leader) = info.leader.clone().filter(|_| !self.polled) {
            self.note_leader(Some(leader), now_ms);
        }
        self.info = Some(info);
    }

    /// Whether replica reports (rather than library hints) name the leader.
    pub fn has_polled(&self) -> bool {
        self.polled
    }

    /// The periodic status poll of every replica came back.
    pub fn observe_cluster(&mut self, reports: &[ReplicaReport], now_ms: u64) {
        let reachable: Vec<_> = reports
            .iter()
            .filter_map(|r| r.status.as_ref().ok())
            .collect();
        let majority = reports.len() / 2 + 1;
        let with_leader = reachable.iter().filter(|s| s.leader_id != 0).count();
        // The replicas know better than our view of them (a leader cut off
        // from its majority still says "leader"); older ones do not say.
        let said: Vec<bool> = reachable.iter().filter_map(|s| s.has_quorum).collect();
        let has_quorum = if said.is_empty() {
            !reports.is_empty() && reachable.len() >= majority && with_leader >= majority
        } else {
            said.contains(&true)
        };
        self.quorum_lost = !has_quorum;

        let current = self.info.as_ref().map(|i| i.server.as_str());
        let ours = reports
            .iter()
            .find(|r| Some(r.server.as_str()) == current)
            .and_then(|r| r.status.as_ref().ok());
        self.term = ours
            .map(|s| s.term)
            .or_else(|| reachable.iter().map(|s| s.term).max());
        // The leader as the highest-term replica that knows one reports it.
        let leader = reachable
            .iter()
            .filter(|s| s.leader_id != 0)
            .max_by_key(|s| s.term)
            .map(|s| (s.leader_id, s.leader_url.clone()));
        if !reports.is_empty() {
            self.polled = true;
            self.note_leader(leader, now_ms);
        }
    }

    fn note_leader(&mut self, leader: Option<(u64, String)>, now_ms: u64) {
        if let Some((id, _)) = &leader {
            if self.last_leader_id.is_some_and(|last| last != *id) {
                self.leader_changed_at_ms = Some(now_ms);
            }
            self.last_leader_id = Some(*id);
        }
        self.leader = leader;
    }
}
