//! Behavioural tests of the state machine through its public API.

use super::*;

fn tok(s: &str) -> TokenHash {
    Sha256::digest(s.as_bytes()).into()
}

/// A distinct well-formed PHC string per name (apply checks the shape).
fn hash(name: &str) -> String {
    format!("$argon2id$v=19$m=19456,t=2,p=1$salt${}", hex::encode(name))
}

const FAR: u64 = u64::MAX / 2;

/// What a snapshot carries of `s`: its core, then its store's records.
fn bytes_of(s: &ChatState) -> Vec<u8> {
    let mut bytes = s.encode_core().unwrap();
    for record in s.store().records() {
        bytes = postcard::to_io(&record, bytes).unwrap();
    }
    bytes
}

/// `s` as a snapshot restores it: its core decoded, its records in a new
/// store.
fn restored(s: &ChatState) -> ChatState {
    let store = store::MemoryStore::from_records(s.store().records());
    ChatState::from_core(&s.encode_core().unwrap(), Box::new(store)).unwrap()
}

/// Request ids the store holds.
fn remembered(s: &ChatState) -> usize {
    s.store()
        .records()
        .filter(|r| matches!(r, store::Record::Remembered { .. }))
        .count()
}

/// A state plus a log position and clock, to apply commands tersely.
struct H {
    s: ChatState,
    index: u64,
    ts: u64,
    events: Vec<ChatEvent>,
}

impl H {
    fn new() -> Self {
        H::over(Box::new(store::MemoryStore::default()))
    }

    /// A harness over an empty `store`.
    fn over(store: Box<dyn store::Store>) -> Self {
        H {
            s: ChatState::with_store(store),
            index: 0,
            ts: 1_000,
            events: Vec::new(),
        }
    }

    fn batch(&mut self, proposals: Vec<Proposal>) -> Vec<CommandResult> {
        self.index += 1;
        let batch = Batch {
            ts_ms: self.ts,
            proposals,
        };
        self.s.apply_batch(self.index, &batch, &mut self.events)
    }

    fn run(&mut self, command: Command) -> CommandResult {
        self.batch(vec![Proposal {
            request_id: None,
            command,
        }])
        .remove(0)
    }

    fn with_id(&mut self, id: &str, command: Command) -> CommandResult {
        self.batch(vec![Proposal {
            request_id: Some(id.into()),
            command,
        }])
        .remove(0)
    }

    fn ok(&mut self, command: Command) -> Outcome {
        self.run(command).expect("command should succeed")
    }

    fn err(&mut self, command: Command) -> ChatError {
        self.run(command).expect_err("command should fail")
    }

    fn tick(&mut self) {
        self.ok(Command::Tick);
    }

    fn take(&mut self) -> Vec<ChatEvent> {
        std::mem::take(&mut self.events)
    }

    /// Creates an account and logs it in with token `tok(name)`.
    fn user(&mut self, name: &str) -> (UserId, TokenHash) {
        let Outcome::Account(a) = self.ok(create_account(name)) else {
            panic!("expected an account")
        };
        self.login(name, name);
        (a.id, tok(name))
    }

    fn login(&mut self, name: &str, token: &str) -> Outcome {
        self.ok(Command::CreateSession {
            username: name.into(),
            verified_hash: hash(name),
            token_hash: tok(token),
            expires_ms: FAR,
        })
    }

    fn send(&mut self, session: TokenHash, target: Target, body: &str) -> MessageView {
        match self.ok(Command::Send {
            session,
            target,
            body: body.into(),
        }) {
            Outcome::Sent(v) => v,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn dm(&mut self, from: TokenHash, to: &str, body: &str) -> MessageView {
        self.send(from, Target::User(to.into()), body)
    }

    fn group(&mut self, session: TokenHash, name: &str, members: &[&str]) -> ConversationView {
        match self.ok(Command::CreateGroup {
            session,
            name: name.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        }) {
            Outcome::Conversation(v) => v,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn unread(&self, user: UserId, conv: ConversationId) -> u64 {
        self.s.conversation(user, conv).unwrap().unread
    }
}

fn create_account(name: &str) -> Command {
    Command::CreateAccount {
        username: name.into(),
        password_hash: hash(name),
    }
}

fn kinds(events: &[ChatEvent]) -> Vec<&EventKind> {
    events.iter().map(|e| &e.kind).collect()
}

// ------------------------------------------------------------------ accounts

#[test]
fn account_names_are_validated_and_unique_ignoring_case() {
    let mut h = H::new();
    for bad in ["", "has space", "ünï", "a/b", &"x".repeat(33)] {
        let e = h.err(create_account(bad));
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad:?}");
        assert!(e.message.contains("1-32"), "{}", e.message);
    }
    h.ok(create_account(&"x".repeat(32)));
    h.ok(create_account("A.b_c-9"));
    h.ok(create_account("Alice"));
    let e = h.err(create_account("aLICE"));
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    assert_eq!(e.message, "username 'aLICE' is taken");
}

#[test]
fn account_ids_are_monotonic_and_never_reused() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, _) = h.user("b");
    assert_eq!((a, b), (1, 2));
    h.ok(Command::DeleteAccount {
        session: ta,
        verified_hash: hash("a"),
    });
    assert!(h.s.account(a).is_none());
    assert!(h.s.account_credentials("a").is_none());
    // The name is free again, with a fresh id.
    let (a2, _) = h.user("A");
    assert_eq!(a2, 3);
    assert_eq!(h.s.account_credentials("a").unwrap().0.username, "A");
}

#[test]
fn account_view_and_credentials() {
    let mut h = H::new();
    h.ts = 5_000;
    let Outcome::Account(v) = h.ok(create_account("Bob")) else {
        panic!()
    };
    assert_eq!(
        v,
        AccountView {
            id: 1,
            username: "Bob".into(),
            online: false,
            last_seen_ms: 0,
            created_ms: 5_000,
        }
    );
    let (view, stored) = h.s.account_credentials("BOB").unwrap();
    assert_eq!(view, v);
    assert_eq!(stored, hash("Bob"));
    assert_eq!(h.s.account(1), Some(v));
    assert_eq!(h.s.account(2), None);
}

#[test]
fn clock_never_goes_backwards() {
    let mut h = H::new();
    h.ts = 10_000;
    h.tick();
    h.ts = 4_000; // a new leader with a slow clock
    let Outcome::Account(v) = h.ok(create_account("a")) else {
        panic!()
    };
    assert_eq!(v.created_ms, 10_000);
    assert_eq!(h.s.now_ms(), 10_000);
    h.ts = 12_000;
    h.tick();
    assert_eq!(h.s.now_ms(), 12_000);
}

// ------------------------------------------------------------------ sessions

#[test]
fn login_checks_account_and_hash_without_leaking_existence() {
    let mut h = H::new();
    h.ok(create_account("alice"));
    let missing = h.err(Command::CreateSession {
        username: "nobody".into(),
        verified_hash: hash("nobody"),
        token_hash: tok("t1"),
        expires_ms: FAR,
    });
    let mismatch = h.err(Command::CreateSession {
        username: "alice".into(),
        verified_hash: hash("old"),
        token_hash: tok("t1"),
        expires_ms: FAR,
    });
    assert_eq!(missing, mismatch);
    assert_eq!(missing.kind, ErrorKind::Unauthenticated);
    assert_eq!(missing.message, "wrong username or password");
    let Outcome::Session {
        account,
        unread,
        expires_ms,
    } = h.ok(Command::CreateSession {
        username: "ALICE".into(),
        verified_hash: hash("alice"),
        token_hash: tok("t1"),
        expires_ms: FAR,
    })
    else {
        panic!()
    };
    assert_eq!(
        (account.username.as_str(), unread, expires_ms),
        ("alice", 0, FAR)
    );
    assert_eq!(h.s.authenticate(&tok("t1"), 0), Ok(1));
}

#[test]
fn login_reports_total_unread() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    let (_, tb) = h.user("b");
    h.user("c");
    h.dm(ta, "c", "1");
    h.dm(tb, "c", "2");
    h.dm(tb, "c", "3");
    let Outcome::Session { unread, .. } = h.login("c", "c2") else {
        panic!()
    };
    assert_eq!(unread, 3);
}

#[test]
fn sessions_expire_by_state_clock_and_reader_clock() {
    let mut h = H::new();
    h.ok(create_account("a"));
    h.ok(Command::CreateSession {
        username: "a".into(),
        verified_hash: hash("a"),
        token_hash: tok("s"),
        expires_ms: 2_000,
    });
    assert_eq!(h.s.authenticate(&tok("s"), 1_999), Ok(1));
    assert_eq!(
        h.s.authenticate(&tok("s"), 2_000).unwrap_err().kind,
        ErrorKind::Unauthenticated
    );
    assert!(h.s.authenticate(&tok("unknown"), 0).is_err());
    h.user("b");
    h.ts = 2_000;
    let e = h.err(Command::Send {
        session: tok("s"),
        target: Target::User("b".into()),
        body: "hi".into(),
    });
    assert_eq!(e.kind, ErrorKind::Unauthenticated);
    assert_eq!(e.message, "session expired or unknown; log in again");
    // Logging in again purges the expired session.
    assert_eq!(h.s.sessions.count(1), 1);
    h.login("a", "fresh");
    assert_eq!(h.s.sessions.count(1), 1);
}

#[test]
fn end_session() {
    let mut h = H::new();
    let (_, t) = h.user("a");
    h.login("a", "other");
    h.ok(Command::EndSession { session: t });
    assert!(h.s.authenticate(&t, 0).is_err());
    assert!(h.s.authenticate(&tok("other"), 0).is_ok());
    let e = h.err(Command::EndSession { session: t });
    assert_eq!(e.kind, ErrorKind::Unauthenticated);
}

#[test]
fn change_password_revokes_other_sessions() {
    let mut h = H::new();
    let (_, t) = h.user("a");
    h.login("a", "phone");
    let e = h.err(Command::ChangePassword {
        session: t,
        verified_hash: hash("wrong"),
        new_hash: hash("new"),
    });
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Unauthenticated, "wrong password")
    );
    assert!(h.s.authenticate(&tok("phone"), 0).is_ok());
    h.ok(Command::ChangePassword {
        session: t,
        verified_hash: hash("a"),
        new_hash: hash("new"),
    });
    assert!(h.s.authenticate(&t, 0).is_ok());
    assert!(h.s.authenticate(&tok("phone"), 0).is_err());
    assert_eq!(h.s.account_credentials("a").unwrap().1, hash("new"));
    // A login verified against the old hash is refused at apply.
    let e = h.err(Command::CreateSession {
        username: "a".into(),
        verified_hash: hash("a"),
        token_hash: tok("late"),
        expires_ms: FAR,
    });
    assert_eq!(e.kind, ErrorKind::Unauthenticated);
}

// ------------------------------------------------------------------ messages

#[test]
fn first_direct_message_creates_the_conversation() {
    let mut h = H::new();
    let (a, ta) = h.user("alice");
    let (b, _) = h.user("bob");
    h.take();
    h.ts = 7_000;
    let m = h.dm(ta, "BOB", "hello");
    assert_eq!(
        m,
        MessageView {
            id: 1,
            conversation: 1,
            sender_id: a,
            sender: "alice".into(),
            body: "hello".into(),
            sent_ms: 7_000,
            index: h.index,
            edited_at_ms: 0,
            reply_to: 0,
            reactions: Vec::new(),
        }
    );
    let ev = h.take();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].recipients, vec![a, b]);
    assert_eq!(
        ev[0].kind,
        EventKind::Membership {
            conversation: 1,
            user: "alice".into(),
            change: MembershipChange::Created,
        }
    );
    assert_eq!(ev[1].recipients, vec![a, b]);
    assert_eq!(ev[1].kind, EventKind::Message(m.clone()));
    // The second message reuses the conversation, without a Created event.
    let m2 = h.dm(ta, "bob", "again");
    assert_eq!((m2.id, m2.conversation), (2, 1));
    assert_eq!(h.take().len(), 1);

    let va = h.s.conversation(a, 1).unwrap();
    let vb = h.s.conversation(b, 1).unwrap();
    assert_eq!(va.name, "bob");
    assert_eq!(vb.name, "alice");
    assert_eq!(va.members, vec!["alice", "bob"]);
    assert_eq!(va.kind, ConversationKind::Direct);
    assert_eq!((va.unread, va.read_up_to), (0, 2));
    assert_eq!((vb.unread, vb.read_up_to), (2, 0));
    assert_eq!(vb.last_message_id, 2);
    assert_eq!(h.s.total_unread(b), 2);
}

#[test]
fn send_validation() {
    let mut h = H::new();
    let (_, ta) = h.user("alice");
    h.user("bob");
    let send = |target: Target, body: &str| Command::Send {
        session: ta,
        target,
        body: body.into(),
    };
    let e = h.err(send(Target::User("bob".into()), ""));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::InvalidArgument, "message body is empty")
    );
    let e = h.err(send(
        Target::User("bob".into()),
        &"x".repeat(MAX_BODY_BYTES + 1),
    ));
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("4096"), "{}", e.message);
    h.ok(send(
        Target::User("bob".into()),
        &"x".repeat(MAX_BODY_BYTES),
    ));
    let e = h.err(send(Target::User("carol".into()), "hi"));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::NotFound, "no account named 'carol'")
    );
    let e = h.err(send(Target::User("Alice".into()), "hi"));
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    let e = h.err(send(Target::Group("nope".into()), "hi"));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::NotFound, "no group named 'nope'")
    );
    let e = h.err(send(Target::Conversation(99), "hi"));
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("99"));
    // Failed sends left no messages and no ids behind.
    assert_eq!(h.dm(ta, "bob", "ok").id, 2);
}

#[test]
fn non_members_cannot_send_or_read() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.user("b");
    let (c, tc) = h.user("c");
    h.dm(ta, "b", "private");
    let g = h.group(ta, "Team", &[]);
    for target in [
        Target::Conversation(1),
        Target::Conversation(g.id),
        Target::Group("team".into()),
    ] {
        let e = h.err(Command::Send {
            session: tc,
            target,
            body: "x".into(),
        });
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
    }
    assert_eq!(
        h.s.history(c, 1, 0, 10).unwrap_err().kind,
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        h.s.conversation(c, 1).unwrap_err().kind,
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        h.s.history(c, 42, 0, 10).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn unread_counts_follow_sends_and_pointers() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let (c, _) = h.user("c");
    let g = h.group(ta, "g", &["b", "c"]).id;
    for i in 0..3 {
        h.send(ta, Target::Conversation(g), &format!("m{i}"));
    }
    assert_eq!((h.unread(a, g), h.unread(b, g), h.unread(c, g)), (0, 3, 3));
    // b replies: b's pointer moves to its own message, everything read.
    let reply = h.send(tb, Target::Group("G".into()), "reply");
    assert_eq!((h.unread(a, g), h.unread(b, g), h.unread(c, g)), (1, 0, 4));
    assert_eq!(h.s.conversation(b, g).unwrap().read_up_to, reply.id);
}

// -------------------------------------------------------------------- groups

#[test]
fn create_group_rules() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, _) = h.user("b");
    h.take();
    let cg = |name: &str, members: &[&str]| Command::CreateGroup {
        session: ta,
        name: name.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
    };
    for bad in [
        "",
        "   ",
        &"g".repeat(MAX_GROUP_NAME_LEN + 1),
        "red\x1b[31m",
        "two\nlines",
        "tab\there",
        "del\x7f",
        "c1\u{9b}31m",
    ] {
        assert_eq!(
            h.err(cg(bad, &[])).kind,
            ErrorKind::InvalidArgument,
            "{bad:?}"
        );
    }
    let e = h.err(cg("g", &["b", "zed", "yon"]));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::NotFound, "no account named 'zed'")
    );
    assert!(h.take().is_empty());
    let Outcome::Conversation(v) = h.ok(cg(&"é".repeat(MAX_GROUP_NAME_LEN), &["B", "b", "a"]))
    else {
        panic!()
    };
    assert_eq!(v.kind, ConversationKind::Group);
    assert_eq!(v.members, vec!["a", "b"]);
    assert_eq!((v.unread, v.last_message_id, v.read_up_to), (0, 0, 0));
    let ev = h.take();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].recipients, vec![a, b]);
    assert!(matches!(
        ev[0].kind,
        EventKind::Membership {
            change: MembershipChange::Created,
            ..
        }
    ));
    h.group(ta, "Team", &[]);
    let e = h.err(cg("TEAM", &[]));
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    assert!(e.message.contains("TEAM"));
}

#[test]
fn add_member_rules() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let (c, tc) = h.user("c");
    let g = h.group(ta, "g", &["b"]).id;
    h.send(tb, Target::Conversation(g), "old news");
    let dm = h.dm(ta, "b", "hi").conversation;
    h.take();
    let add = |session, conversation, who: &str| Command::AddMember {
        session,
        conversation,
        username: who.into(),
    };
    assert_eq!(h.err(add(tc, g, "c")).kind, ErrorKind::PermissionDenied);
    let e = h.err(add(ta, dm, "c"));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ErrorKind::FailedPrecondition,
            "cannot add members to a direct conversation"
        )
    );
    let e = h.err(add(ta, g, "ghost"));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::NotFound, "no account named 'ghost'")
    );
    assert_eq!(h.err(add(ta, g, "B")).kind, ErrorKind::AlreadyExists);
    assert_eq!(h.err(add(ta, 77, "c")).kind, ErrorKind::NotFound);
    assert!(h.take().is_empty());

    h.ok(add(ta, g, "C"));
    let ev = h.take();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].recipients, vec![a, b, c]);
    assert_eq!(
        ev[0].kind,
        EventKind::Membership {
            conversation: g,
            user: "c".into(),
            change: MembershipChange::Joined,
        }
    );
    let v = h.s.conversation(c, g).unwrap();
    assert_eq!((v.unread, v.read_up_to), (0, 1));
    assert_eq!(h.s.history(c, g, 0, 10).unwrap().0.len(), 1);
}

#[test]
fn leaving_groups() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let g = h.group(ta, "club", &["b"]).id;
    let m = h.send(tb, Target::Conversation(g), "hi");
    let dm = h.dm(ta, "b", "x").conversation;
    h.take();
    let leave = |session, conversation| Command::LeaveGroup {
        session,
        conversation,
    };
    assert_eq!(h.err(leave(ta, dm)).kind, ErrorKind::FailedPrecondition);
    h.ok(leave(ta, g));
    let ev = h.take();
    assert_eq!(ev[0].recipients, vec![a, b]);
    assert_eq!(
        ev[0].kind,
        EventKind::Membership {
            conversation: g,
            user: "a".into(),
            change: MembershipChange::Left,
        }
    );
    assert_eq!(h.err(leave(ta, g)).kind, ErrorKind::PermissionDenied);
    assert_eq!(h.s.conversations(a).len(), 1);
    assert_eq!(h.s.conversation(b, g).unwrap().members, vec!["b"]);
    // The last member leaving removes the group and its messages.
    h.ok(leave(tb, g));
    assert_eq!(
        h.s.conversation(b, g).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert!(Conversations::home_of(h.s.store(), m.id).is_none());
    let e = h.err(Command::DeleteMessages {
        session: tb,
        ids: vec![m.id],
    });
    assert_eq!(e.kind, ErrorKind::NotFound);
    // And frees the name.
    h.group(ta, "CLUB", &[]);
}

// ------------------------------------------------------------- read pointers

#[test]
fn mark_read_clamps_and_only_moves_forward() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let c = h.dm(ta, "b", "1").conversation;
    h.dm(ta, "b", "2");
    h.dm(ta, "b", "3");
    h.take();
    let mark = |up_to| Command::MarkRead {
        session: tb,
        conversation: c,
        up_to,
    };
    h.ok(mark(2));
    assert_eq!(h.unread(b, c), 1);
    let ev = h.take();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].recipients, vec![a, b]);
    assert_eq!(
        ev[0].kind,
        EventKind::ReadReceipt {
            conversation: c,
            reader: "b".into(),
            up_to: 2,
        }
    );
    h.ok(mark(1)); // backwards: nothing happens
    assert!(h.take().is_empty());
    assert_eq!(h.s.conversation(b, c).unwrap().read_up_to, 2);
    h.ok(mark(1_000)); // clamped to the newest message
    assert_eq!(h.s.conversation(b, c).unwrap().read_up_to, 3);
    assert_eq!(h.unread(b, c), 0);
    assert_eq!(h.take().len(), 1);
    h.ok(mark(1_000));
    assert!(h.take().is_empty());
    let e = h.err(Command::MarkRead {
        session: tok("nobody"),
        conversation: c,
        up_to: 1,
    });
    assert_eq!(e.kind, ErrorKind::Unauthenticated);
    let (_, tx) = h.user("x");
    let e = h.err(Command::MarkRead {
        session: tx,
        conversation: c,
        up_to: 1,
    });
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
}

#[test]
fn read_unread_across_conversations_in_id_order() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let (_, tc) = h.user("c");
    let m1 = h.dm(ta, "b", "a1");
    let m2 = h.dm(tc, "b", "c1");
    h.dm(tb, "a", "own"); // b's own message is never unread
    let m4 = h.dm(ta, "b", "a2");
    let m5 = h.dm(tc, "b", "c2");
    assert_eq!(h.s.total_unread(b), 3); // b's reply read a1 in that DM
    let _ = m1;
    h.take();
    let ru = |conversation, limit| Command::ReadUnread {
        session: tb,
        conversation,
        limit,
    };
    assert_eq!(h.err(ru(None, 0)).kind, ErrorKind::InvalidArgument);
    assert_eq!(h.err(ru(None, 1001)).kind, ErrorKind::InvalidArgument);
    let Outcome::Messages {
        messages,
        remaining,
    } = h.ok(ru(None, 1))
    else {
        panic!()
    };
    assert_eq!(
        messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m2.id]
    );
    assert_eq!(remaining, 2);
    let Outcome::Messages {
        messages,
        remaining,
    } = h.ok(ru(None, 1000))
    else {
        panic!()
    };
    assert_eq!(
        messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m4.id, m5.id]
    );
    assert_eq!(messages[0].body, "a2");
    assert_eq!(remaining, 0);
    assert_eq!(h.s.total_unread(b), 0);
    let receipts = h
        .take()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::ReadReceipt { .. }))
        .count();
    assert_eq!(receipts, 3);
    let Outcome::Messages {
        messages,
        remaining,
    } = h.ok(ru(None, 10))
    else {
        panic!()
    };
    assert!(messages.is_empty());
    assert_eq!(remaining, 0);
    assert!(h.take().is_empty());
}

#[test]
fn read_unread_in_one_conversation() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let (_, tc) = h.user("c");
    let dm_a = h.dm(ta, "b", "1").conversation;
    h.dm(ta, "b", "2");
    h.dm(ta, "b", "3");
    let dm_c = h.dm(tc, "b", "other").conversation;
    let Outcome::Messages {
        messages,
        remaining,
    } = h.ok(Command::ReadUnread {
        session: tb,
        conversation: Some(dm_a),
        limit: 2,
    })
    else {
        panic!()
    };
    assert_eq!(
        messages.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["1", "2"]
    );
    assert_eq!(remaining, 1);
    assert_eq!(h.s.conversation(b, dm_a).unwrap().read_up_to, 2);
    assert_eq!(h.unread(b, dm_c), 1);
    let e = h.err(Command::ReadUnread {
        session: ta,
        conversation: Some(dm_c),
        limit: 2,
    });
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
}

// ------------------------------------------------------------------ deletion

#[test]
fn delete_messages_is_all_or_nothing() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let m1 = h.dm(ta, "b", "one");
    let m2 = h.dm(ta, "b", "two");
    let theirs = h.dm(tb, "a", "three"); // b has now read m1, m2
    let m4 = h.dm(ta, "b", "four");
    let conv = m1.conversation;
    h.take();
    let del = |session, ids: Vec<MessageId>| Command::DeleteMessages { session, ids };
    assert_eq!(h.err(del(ta, vec![])).kind, ErrorKind::InvalidArgument);
    assert_eq!(
        h.err(del(ta, vec![1; 1001])).kind,
        ErrorKind::InvalidArgument
    );
    let e = h.err(del(ta, vec![m1.id, 99]));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::NotFound, "message 99 does not exist")
    );
    let e = h.err(del(ta, vec![m1.id, theirs.id]));
    assert_eq!(
        (e.kind, e.message),
        (
            ErrorKind::PermissionDenied,
            format!("message {} is not yours", theirs.id)
        )
    );
    assert!(h.take().is_empty());
    assert_eq!(h.s.history(b, conv, 0, 10).unwrap().0.len(), 4);
    assert_eq!(h.unread(b, conv), 1);

    assert_eq!(
        h.ok(del(ta, vec![m4.id, m2.id, m2.id])),
        Outcome::Deleted(2)
    );
    assert_eq!(h.unread(b, conv), 0); // m4 was unread, m2 was not
    let ev = h.take();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].recipients, vec![a, b]);
    assert_eq!(
        ev[0].kind,
        EventKind::MessagesDeleted {
            conversation: conv,
            ids: vec![m2.id, m4.id],
        }
    );
    let (page, _) = h.s.history(b, conv, 0, 10).unwrap();
    assert_eq!(
        page.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![theirs.id, m1.id]
    );
    assert_eq!(
        h.s.conversation(b, conv).unwrap().last_message_id,
        theirs.id
    );
    // The body is gone from the serialized state.
    let bytes = bytes_of(&h.s);
    assert!(!bytes.windows(4).any(|w| w == b"four"));
    assert!(bytes.windows(5).any(|w| w == b"three"));
}

// --------------------------------------------------------------------- edits

fn edit(session: TokenHash, id: MessageId, body: &str) -> Command {
    Command::EditMessage {
        session,
        id,
        body: body.into(),
    }
}

#[test]
fn editing_keeps_id_and_place_and_only_the_latest_text() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let m1 = h.dm(ta, "b", "first draft");
    let m2 = h.dm(tb, "a", "reply");
    let conv = m1.conversation;
    let unread_before = h.unread(b, conv);
    h.take();
    h.ts = 5_000;
    let Outcome::Changed(v) = h.ok(edit(ta, m1.id, "second thought")) else {
        panic!("not changed")
    };
    assert_eq!(
        v,
        MessageView {
            body: "second thought".into(),
            edited_at_ms: 5_000,
            ..m1.clone()
        }
    );
    let ev = h.take();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].recipients, vec![a, b]);
    assert_eq!(ev[0].kind, EventKind::Edited(v.clone()));
    // Same id, same place, no new unread, still the newest is m2.
    let (page, _) = h.s.history(b, conv, 0, 10).unwrap();
    assert_eq!(page, vec![m2.clone(), v.clone()]);
    assert_eq!(h.unread(b, conv), unread_before);
    assert_eq!(h.s.conversation(b, conv).unwrap().last_message_id, m2.id);
    // Edited again: only the newest text stays in the state.
    h.ts = 6_000;
    h.ok(edit(ta, m1.id, "third"));
    let (page, _) = h.s.history(a, conv, 0, 10).unwrap();
    assert_eq!(
        (page[1].body.as_str(), page[1].edited_at_ms),
        ("third", 6_000)
    );
    let bytes = bytes_of(&h.s);
    assert!(!bytes.windows(6).any(|w| w == b"second"));
    assert!(!bytes.windows(11).any(|w| w == b"first draft"));
    // A snapshot keeps the edit.
    assert_eq!(restored(&h.s), h.s);
    assert_eq!(
        restored(&h.s).history(a, conv, 0, 10).unwrap().0[1].edited_at_ms,
        6_000
    );
}

#[test]
fn editing_is_refused_for_others_deleted_and_bad_bodies() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    let (_, tb) = h.user("b");
    let (_, tc) = h.user("c");
    let mine = h.dm(ta, "b", "mine");
    let theirs = h.dm(tb, "a", "theirs");
    let gone = h.dm(ta, "b", "gone");
    h.ok(Command::DeleteMessages {
        session: ta,
        ids: vec![gone.id],
    });
    h.take();
    let e = h.err(edit(ta, theirs.id, "hijacked"));
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert!(e.message.contains("not yours"), "{}", e.message);
    // Someone outside the conversation learns nothing more than NOT yours.
    assert_eq!(
        h.err(edit(tc, mine.id, "x")).kind,
        ErrorKind::PermissionDenied
    );
    let e = h.err(edit(ta, gone.id, "back"));
    assert_eq!(
        (e.kind, e.message),
        (
            ErrorKind::NotFound,
            format!("message {} does not exist", gone.id)
        )
    );
    assert_eq!(h.err(edit(ta, 999, "x")).kind, ErrorKind::NotFound);
    assert_eq!(
        h.err(edit(ta, mine.id, "")).kind,
        ErrorKind::InvalidArgument
    );
    let big = "x".repeat(MAX_BODY_BYTES + 1);
    assert_eq!(
        h.err(edit(ta, mine.id, &big)).kind,
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        h.err(edit(tok("nobody"), mine.id, "x")).kind,
        ErrorKind::Unauthenticated
    );
    // Nothing changed, nothing emitted.
    assert!(h.take().is_empty());
    let (page, _) =
        h.s.history(h.s.authenticate(&tb, 1).unwrap(), mine.conversation, 0, 10)
            .unwrap();
    assert!(page.iter().all(|m| m.edited_at_ms == 0));
    assert_eq!(page.last().map(|m| m.body.as_str()), Some("mine"));
}

#[test]
fn a_retried_edit_applies_once_and_answers_the_original() {
    let mut h = H::new();
    h.ok(Command::SetRules { version: RULES });
    let (_, ta) = h.user("a");
    h.user("b");
    let m = h.dm(ta, "b", "one");
    h.take();
    h.ts = 2_000;
    let first = h.with_id("e1", edit(ta, m.id, "two")).unwrap();
    assert_eq!(h.take().len(), 1);
    // The same request id again, later, even from another session of the
    // same account: the original result, no second edit, no event.
    h.login("a", "a-again");
    h.ts = 3_000;
    let again = h.with_id("e1", edit(tok("a-again"), m.id, "two")).unwrap();
    assert_eq!(again, first);
    let Outcome::Changed(v) = &again else {
        panic!("not changed")
    };
    assert_eq!(v.edited_at_ms, 2_000);
    assert!(h.take().is_empty());
    // Another id is another edit.
    let Outcome::Changed(v) = h.with_id("e2", edit(ta, m.id, "three")).unwrap() else {
        panic!("not changed")
    };
    assert_eq!((v.body.as_str(), v.edited_at_ms), ("three", 3_000));
}

#[test]
fn edits_are_deterministic_and_in_the_history_digest() {
    let run = |text: &str| {
        let mut h = H::new();
        let (_, ta) = h.user("a");
        h.user("b");
        let m = h.dm(ta, "b", "one");
        h.ok(edit(ta, m.id, text));
        h
    };
    let (x, y, z) = (run("two"), run("two"), run("deux"));
    assert_eq!(x.s, y.s);
    assert_eq!(x.s.digest(), y.s.digest());
    assert_eq!(x.s.history_digest(), y.s.history_digest());
    assert_ne!(x.s.digest(), z.s.digest());
    assert_ne!(x.s.history_digest(), z.s.history_digest());
}

// ------------------------------------------------------------------- replies

fn reply(session: TokenHash, target: Target, body: &str, reply_to: MessageId) -> Command {
    Command::SendReply {
        session,
        target,
        body: body.into(),
        reply_to,
    }
}

#[test]
fn a_reply_names_a_message_of_its_own_conversation() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let (_, tc) = h.user("c");
    let original = h.dm(ta, "b", "question");
    let team = h.group(ta, "team", &["b", "c"]);
    let in_group = h.send(tc, Target::Group("team".into()), "elsewhere");
    h.take();
    let Outcome::Sent(answer) = h.ok(reply(tb, Target::User("a".into()), "answer", original.id))
    else {
        panic!("not sent")
    };
    assert_eq!(
        (answer.reply_to, answer.conversation),
        (original.id, original.conversation)
    );
    let ev = h.take();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].recipients, vec![a, b]);
    assert_eq!(ev[0].kind, EventKind::Message(answer.clone()));
    let (page, _) = h.s.history(a, original.conversation, 0, 10).unwrap();
    assert_eq!(page[0], answer);
    assert_eq!(page[1].reply_to, 0);
    // By conversation id and in a group too.
    let target = Target::Conversation(team.id);
    let Outcome::Sent(v) = h.ok(reply(ta, target.clone(), "re", in_group.id)) else {
        panic!("not sent")
    };
    assert_eq!(v.reply_to, in_group.id);

    // Another conversation's message, a missing one, a deleted one.
    h.take();
    let e = h.err(reply(ta, target.clone(), "wrong place", original.id));
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(
        e.message.contains("not in this conversation"),
        "{}",
        e.message
    );
    let e = h.err(reply(ta, target.clone(), "nothing", 999));
    assert_eq!(e.kind, ErrorKind::NotFound);
    h.ok(Command::DeleteMessages {
        session: tc,
        ids: vec![in_group.id],
    });
    h.take();
    assert_eq!(
        h.err(reply(ta, target, "gone", in_group.id)).kind,
        ErrorKind::NotFound
    );
    // A first direct message cannot answer anything, and creates nothing.
    let convs = h.s.conversations(b).len();
    let e = h.err(reply(tb, Target::User("c".into()), "hi", original.id));
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert_eq!(h.s.conversations(b).len(), convs);
    assert!(h.take().is_empty());

    // The reply keeps naming the original after it is deleted, through a
    // snapshot too.
    h.ok(Command::DeleteMessages {
        session: ta,
        ids: vec![original.id],
    });
    let back = restored(&h.s);
    assert_eq!(back, h.s);
    let (page, _) = back.history(b, original.conversation, 0, 10).unwrap();
    assert_eq!(
        page.iter().map(|m| (m.id, m.reply_to)).collect::<Vec<_>>(),
        vec![(answer.id, original.id)]
    );
}

#[test]
fn a_retried_reply_answers_the_original_reply() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    let (_, tb) = h.user("b");
    let original = h.dm(ta, "b", "q");
    let to_a = Target::User("a".into());
    let first = h.with_id("r", reply(tb, to_a.clone(), "ans", original.id));
    let again = h.with_id("r", reply(tb, to_a, "ans", original.id));
    assert_eq!(first, again);
    let (page, _) = h.s.history(1, original.conversation, 0, 10).unwrap();
    assert_eq!(page.len(), 2);
}

// ----------------------------------------------------------------- reactions

fn react(session: TokenHash, id: MessageId, emoji: &str) -> Command {
    Command::React {
        session,
        id,
        emoji: emoji.into(),
    }
}

fn reactions_of(o: Outcome) -> Vec<(String, Vec<String>)> {
    let Outcome::Changed(v) = o else {
        panic!("not changed: {o:?}")
    };
    v.reactions
        .into_iter()
        .map(|r| (r.emoji, r.users))
        .collect()
}

fn r(emoji: &str, users: &[&str]) -> (String, Vec<String>) {
    (
        emoji.to_string(),
        users.iter().map(|u| u.to_string()).collect(),
    )
}

#[test]
fn reactions_toggle_replace_and_count_per_user() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let (_, tc) = h.user("c");
    h.group(ta, "team", &["b", "c"]);
    let m = h.send(ta, Target::Group("team".into()), "ship it");
    h.take();
    assert_eq!(
        reactions_of(h.ok(react(tb, m.id, "👍"))),
        vec![r("👍", &["b"])]
    );
    assert_eq!(
        reactions_of(h.ok(react(ta, m.id, "👍"))),
        vec![r("👍", &["a", "b"])]
    );
    // Another emoji replaces the user's own.
    assert_eq!(
        reactions_of(h.ok(react(tc, m.id, "🎉"))),
        vec![r("🎉", &["c"]), r("👍", &["a", "b"])]
    );
    assert_eq!(
        reactions_of(h.ok(react(tb, m.id, "🎉"))),
        vec![r("🎉", &["b", "c"]), r("👍", &["a"])]
    );
    // The same emoji again removes it.
    assert_eq!(
        reactions_of(h.ok(react(ta, m.id, "👍"))),
        vec![r("🎉", &["b", "c"])]
    );
    let ev = h.take();
    assert_eq!(ev.len(), 5);
    assert!(ev.iter().all(|e| matches!(e.kind, EventKind::Reacted(_))));
    assert_eq!(ev[4].recipients.len(), 3);
    // In the history, and through a snapshot.
    let (page, _) = h.s.history(a, m.conversation, 0, 10).unwrap();
    assert_eq!(page[0].reactions.len(), 1);
    assert_eq!(page[0].reactions[0].users, vec!["b", "c"]);
    let back = restored(&h.s);
    assert_eq!(back, h.s);
    assert_eq!(back.history(b, m.conversation, 0, 1).unwrap().0, page);
}

#[test]
fn reactions_are_validated_and_limited_to_members() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.user("b");
    let (_, tc) = h.user("c");
    let m = h.dm(ta, "b", "hi");
    h.take();
    for bad in ["", " ", "\u{1b}[2J", "a\nb", "👍 👍", &"x".repeat(33)] {
        let e = h.err(react(ta, m.id, bad));
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad:?}");
    }
    assert_eq!(
        h.err(react(tc, m.id, "👍")).kind,
        ErrorKind::PermissionDenied
    );
    assert_eq!(h.err(react(ta, 999, "👍")).kind, ErrorKind::NotFound);
    h.ok(Command::DeleteMessages {
        session: ta,
        ids: vec![m.id],
    });
    h.take();
    assert_eq!(h.err(react(ta, m.id, "👍")).kind, ErrorKind::NotFound);
    assert!(h.take().is_empty());
}

#[test]
fn a_retried_reaction_toggles_once() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.user("b");
    let m = h.dm(ta, "b", "hi");
    let first = h.with_id("x", react(ta, m.id, "👍")).unwrap();
    let again = h.with_id("x", react(ta, m.id, "👍")).unwrap();
    assert_eq!(first, again);
    assert_eq!(reactions_of(again), vec![r("👍", &["a"])]);
}

#[test]
fn reactions_are_deterministic_and_in_the_history_digest() {
    let run = |emoji: &str| {
        let mut h = H::new();
        let (_, ta) = h.user("a");
        let (_, tb) = h.user("b");
        let m = h.dm(ta, "b", "hi");
        h.ok(react(tb, m.id, emoji));
        h
    };
    let (x, y, z) = (run("👍"), run("👍"), run("🎉"));
    assert_eq!(x.s, y.s);
    assert_eq!(x.s.history_digest(), y.s.history_digest());
    assert_ne!(x.s.digest(), z.s.digest());
    assert_ne!(x.s.history_digest(), z.s.history_digest());
}

#[test]
fn delete_account_semantics() {
    let mut h = H::new();
    let (a, ta) = h.user("alice");
    let (b, tb) = h.user("bob");
    let (c, tc) = h.user("carol");
    h.login("alice", "alice-phone");
    let dm = h.dm(ta, "bob", "from alice").conversation;
    let g = h.group(ta, "trio", &["bob", "carol"]).id;
    let solo = h.group(ta, "solo", &[]).id;
    let both_gone = h.dm(ta, "carol", "to carol").conversation;
    h.send(tb, Target::Conversation(g), "bob in group");
    h.dm(tb, "alice", "unread by alice");
    h.ok(Command::SubscriptionOpened {
        replica: 1,
        subscription: 1,
        session: ta,
    });
    h.take();

    let e = h.err(Command::DeleteAccount {
        session: ta,
        verified_hash: hash("wrong"),
    });
    assert_eq!(e.kind, ErrorKind::Unauthenticated);
    assert!(h.take().is_empty());
    h.ok(Command::DeleteAccount {
        session: ta,
        verified_hash: hash("alice"),
    });
    let ev = h.take();
    // Offline to alice and her contacts, then AccountDeleted per conversation.
    assert_eq!(ev[0].recipients, vec![a, b, c]);
    assert!(matches!(
        ev[0].kind,
        EventKind::Presence { online: false, .. }
    ));
    let deleted: Vec<(ConversationId, Vec<UserId>)> = ev[1..]
        .iter()
        .map(|e| match &e.kind {
            EventKind::Membership {
                conversation,
                user,
                change: MembershipChange::AccountDeleted,
            } if user == "alice" => (*conversation, e.recipients.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        deleted,
        vec![(dm, vec![b]), (g, vec![b, c]), (both_gone, vec![c])]
    );

    // Sessions gone, account gone, presence gone, name free.
    assert!(h.s.authenticate(&ta, 0).is_err());
    assert!(h.s.authenticate(&tok("alice-phone"), 0).is_err());
    assert!(h.s.account(a).is_none());
    assert!(h.s.list_accounts("*", "", 10).0.iter().all(|v| v.id != a));
    assert_eq!(h.s.next_lease_expiry(), None);
    assert_eq!(h.s.total_unread(a), 0);
    assert!(h.s.conversations(a).is_empty());
    // The empty group is gone; the trio lives on without alice.
    assert_eq!(
        h.s.conversation(b, solo).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        h.s.conversation(b, g).unwrap().members,
        vec!["bob", "carol"]
    );
    // The DM stays readable with alice's messages and name.
    let v = h.s.conversation(b, dm).unwrap();
    assert_eq!(
        (v.name.as_str(), v.members.clone()),
        ("alice", vec!["bob".to_string()])
    );
    let (page, _) = h.s.history(b, dm, 0, 10).unwrap();
    assert_eq!(page.last().unwrap().sender, "alice");
    assert_eq!(page.last().unwrap().body, "from alice");
    // But nobody can write to alice any more.
    let e = h.err(Command::Send {
        session: tb,
        target: Target::Conversation(dm),
        body: "hello?".into(),
    });
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("alice"));
    let e = h.err(Command::Send {
        session: tb,
        target: Target::User("alice".into()),
        body: "hello?".into(),
    });
    assert_eq!(e.kind, ErrorKind::NotFound);
    // carol deleting too removes the DM nobody is left in.
    h.ok(Command::DeleteAccount {
        session: tc,
        verified_hash: hash("carol"),
    });
    assert!(h.s.conversations.get(both_gone).is_none());
    assert!(h.s.conversations.get(dm).is_some());
    // A new alice gets a new id and a new DM with bob.
    let (a2, _) = h.user("Alice");
    assert_ne!(a2, a);
    let fresh = h.dm(tb, "alice", "hi new alice").conversation;
    assert_ne!(fresh, dm);
}

// ------------------------------------------------------------------ presence

fn presence_of(ev: &ChatEvent) -> (String, bool, u64) {
    match &ev.kind {
        EventKind::Presence {
            user,
            online,
            last_seen_ms,
        } => (user.clone(), *online, *last_seen_ms),
        other => panic!("not presence: {other:?}"),
    }
}

#[test]
fn presence_transitions_and_contacts() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, _) = h.user("b");
    let (c, _) = h.user("c");
    h.dm(ta, "b", "hi");
    h.take();
    let open = |replica, subscription| Command::SubscriptionOpened {
        replica,
        subscription,
        session: ta,
    };
    h.ts = 2_000;
    h.ok(open(1, 10));
    let ev = h.take();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].recipients, vec![a, b]); // not c: no shared conversation
    assert_eq!(presence_of(&ev[0]), ("a".into(), true, 2_000));
    let view = h.s.account(a).unwrap();
    assert!(view.online);
    assert_eq!(view.last_seen_ms, 2_000);
    assert!(!h.s.account(c).unwrap().online);
    // A second device: no transition.
    h.ok(open(2, 20));
    assert!(h.take().is_empty());
    h.ts = 3_000;
    h.ok(Command::SubscriptionClosed {
        replica: 1,
        subscription: 10,
    });
    assert!(h.take().is_empty());
    h.ok(Command::SubscriptionClosed {
        replica: 2,
        subscription: 20,
    });
    let ev = h.take();
    assert_eq!(presence_of(&ev[0]), ("a".into(), false, 3_000));
    assert_eq!(h.s.account(a).unwrap().last_seen_ms, 3_000);
    // Closing an unknown subscription is a no-op.
    h.ok(Command::SubscriptionClosed {
        replica: 2,
        subscription: 20,
    });
    assert!(h.take().is_empty());
    // An invalid session cannot open a subscription.
    let e = h.err(Command::SubscriptionOpened {
        replica: 1,
        subscription: 1,
        session: tok("nope"),
    });
    assert_eq!(e.kind, ErrorKind::Unauthenticated);
}

#[test]
fn leases_expire_at_batch_start() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (_, tb) = h.user("b");
    h.ts = 10_000;
    h.ok(Command::SubscriptionOpened {
        replica: 1,
        subscription: 1,
        session: ta,
    });
    h.ok(Command::SubscriptionOpened {
        replica: 2,
        subscription: 1,
        session: tb,
    });
    assert_eq!(h.s.next_lease_expiry(), Some(10_000 + PRESENCE_LEASE_MS));
    // Replica 2 renews; replica 1 goes silent.
    h.ok(Command::PresenceLease {
        replica: 2,
        until_ms: 50_000,
    });
    // A lease for a replica without subscriptions is ignored.
    h.ok(Command::PresenceLease {
        replica: 3,
        until_ms: 1,
    });
    assert_eq!(h.s.presence.lease(3), None);
    h.ts = 10_000 + PRESENCE_LEASE_MS; // not yet past
    h.tick();
    assert!(h.s.is_online(a));
    h.take();
    h.ts += 1;
    h.tick();
    assert!(!h.s.is_online(a));
    let ev = h.take();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        presence_of(&ev[0]),
        ("a".into(), false, 10_000 + PRESENCE_LEASE_MS + 1)
    );
    assert_eq!(h.s.next_lease_expiry(), Some(50_000));
    // A new subscription never shortens a lease.
    h.ok(Command::SubscriptionOpened {
        replica: 2,
        subscription: 2,
        session: ta,
    });
    assert_eq!(h.s.next_lease_expiry(), Some(50_000));
}

#[test]
fn replica_restart_drops_its_subscriptions() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    for (replica, subscription, session) in [(1, 1, ta), (1, 2, tb), (2, 3, tb)] {
        h.ok(Command::SubscriptionOpened {
            replica,
            subscription,
            session,
        });
    }
    h.take();
    h.ok(Command::ReplicaStarted { replica: 1 });
    assert!(!h.s.is_online(a));
    assert!(h.s.is_online(b));
    let ev = h.take();
    assert_eq!(ev.len(), 1); // a offline; b stays online via replica 2
    assert!(!presence_of(&ev[0]).1);
    h.ok(Command::ReplicaStarted { replica: 1 });
    assert!(h.take().is_empty());
    assert_eq!(h.s.presence.lease(1), None);
}

#[test]
fn incarnations_are_recorded_and_replaced_only_on_join() {
    let mut h = H::new();
    let (one, two) = ([1u8; 16], [2u8; 16]);
    let record = |incarnation, replace| Command::RecordIncarnation {
        replica: 3,
        incarnation,
        replace,
    };
    assert_eq!(h.s.incarnation_of(3), None);
    h.ok(record(one, false));
    h.ok(record(one, false));
    assert_eq!(h.s.incarnation_of(3), Some(one));
    // Wiped storage, started without --join: refused, nothing changes.
    let err = h.err(record(two, false));
    assert_eq!(err.kind, ErrorKind::FailedPrecondition);
    assert_eq!(h.s.incarnation_of(3), Some(one));
    // --join: the operator re-added it.
    h.ok(record(two, true));
    assert_eq!(h.s.incarnation_of(3), Some(two));
    // Carried by snapshots.
    assert_eq!(restored(&h.s).incarnation_of(3), Some(two));
}

// --------------------------------------------------------------------- dedup

#[test]
fn dedup_returns_the_original_result_without_applying() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.user("b");
    let send = Command::Send {
        session: ta,
        target: Target::User("b".into()),
        body: "once".into(),
    };
    let first = h.with_id("r1", send.clone()).unwrap();
    let seq = h.s.last_event_seq();
    h.take();
    h.ts += 60_000;
    let again = h.with_id("r1", send.clone()).unwrap();
    assert_eq!(again, first);
    assert!(h.take().is_empty());
    assert_eq!(h.s.last_event_seq(), seq);
    assert_eq!(h.s.history(1, 1, 0, 10).unwrap().0.len(), 1);
    // Even a different command under the same id returns the original.
    assert_eq!(h.with_id("r1", Command::Tick).unwrap(), Outcome::Done);
    assert_eq!(
        h.with_id("r1", Command::EndSession { session: ta })
            .unwrap(),
        first
    );
    assert!(h.s.authenticate(&ta, 0).is_ok());

    // Errors are remembered too, even when the cause has gone away.
    let to_c = Command::Send {
        session: ta,
        target: Target::User("c".into()),
        body: "x".into(),
    };
    let e = h.with_id("r2", to_c.clone()).unwrap_err();
    h.user("c");
    assert_eq!(h.with_id("r2", to_c.clone()).unwrap_err(), e);

    // After the window, the id is forgotten and the command applies again.
    h.ts += DEDUP_WINDOW_MS;
    let third = h.with_id("r1", send).unwrap();
    assert_ne!(third, first);
    assert!(h.with_id("r2", to_c).is_ok());
}

#[test]
fn dedup_follows_the_account_from_the_rules_that_say_so() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.user("b");
    let send = |session| Command::Send {
        session,
        target: Target::User("b".into()),
        body: "once".into(),
    };
    // The first rules: a new session is a new scope (kept for the log
    // written before `SetRules`).
    let old = h.with_id("r0", send(ta)).unwrap();
    h.login("a", "a2");
    assert_ne!(h.with_id("r0", send(tok("a2"))).unwrap(), old);

    // A request first applied by the first rules, retried (same session)
    // after they changed, is still recognised.
    let straddling = h.with_id("r-straddle", send(ta)).unwrap();
    assert_eq!(h.s.rules(), 0);
    h.ok(Command::SetRules { version: RULES });
    h.ok(Command::SetRules { version: 0 });
    assert_eq!(h.s.rules(), RULES, "rules never go down");
    h.ts += 60_000;
    assert_eq!(h.with_id("r-straddle", send(ta)).unwrap(), straddling);

    // Send, log out, log in again, retry with the same id: one message,
    // the original result.
    let first = h.with_id("r1", send(ta)).unwrap();
    h.ok(Command::EndSession { session: ta });
    h.login("a", "a3");
    assert_eq!(h.with_id("r1", send(tok("a3"))).unwrap(), first);
    // Another account's id "r1" is its own.
    let (_, tb) = h.user("c");
    assert_ne!(
        h.with_id(
            "r1",
            Command::Send {
                session: tb,
                target: Target::User("b".into()),
                body: "once".into(),
            }
        )
        .unwrap(),
        first
    );
    // A retried log-out, with the session it ended, gets its answer.
    let out = h.with_id("r2", Command::EndSession { session: tok("a3") });
    assert!(out.is_ok());
    assert_eq!(
        h.with_id("r2", Command::EndSession { session: tok("a3") }),
        out
    );
    // The rules survive a snapshot.
    assert_eq!(restored(&h.s).rules(), RULES);
}

#[test]
fn ending_sessions_tells_their_streams_from_the_rules_that_say_so() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    h.login("a", "a2");
    let ended = |h: &mut H| -> Vec<Vec<TokenHash>> {
        h.take()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::SessionsEnded { sessions } => {
                    assert_eq!(e.recipients, vec![a]);
                    Some(sessions)
                }
                _ => None,
            })
            .collect()
    };
    // The first rules emit nothing (the event sequence of the log written
    // before them stays as it was).
    h.take();
    h.ok(Command::EndSession { session: tok("a2") });
    assert!(ended(&mut h).is_empty());

    h.ok(Command::SetRules { version: RULES });
    h.login("a", "a3");
    h.login("a", "a4");
    h.take();
    h.ok(Command::EndSession { session: tok("a4") });
    assert_eq!(ended(&mut h), vec![vec![tok("a4")]]);
    // A password change ends the other sessions, not the one that asked.
    h.ok(Command::ChangePassword {
        session: ta,
        verified_hash: hash("a"),
        new_hash: hash("a-new"),
    });
    assert_eq!(ended(&mut h), vec![vec![tok("a3")]]);
    h.ok(Command::DeleteAccount {
        session: ta,
        verified_hash: hash("a-new"),
    });
    assert_eq!(ended(&mut h), vec![vec![ta]]);
}

#[test]
fn a_core_written_before_the_rules_reads_as_the_first_rules() {
    let mut h = H::new();
    h.user("a");
    let core = h.s.encode_core().unwrap();
    // What releases before the rules wrote: the core without its last field.
    let rules = postcard::to_stdvec(&(h.s.rules(), 0u64)).unwrap();
    let old = &core[..core.len() - rules.len()];
    let s = ChatState::from_core(old, Box::new(store::MemoryStore::default())).unwrap();
    assert_eq!(s.rules(), 0);
    assert_eq!(s.encode_core().unwrap(), core);
}

#[test]
fn dedup_window_edges_and_scopes() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    let (_, tb) = h.user("b");
    let send = |session, body: &str| Command::Send {
        session,
        target: Target::Group("g".into()),
        body: body.into(),
    };
    h.group(ta, "g", &["b"]);
    let t0 = h.ts;
    let first = h.with_id("same", send(ta, "from a")).unwrap();
    // Another user's request with the same id is not confused with it.
    let other = h.with_id("same", send(tb, "from b")).unwrap();
    assert_ne!(first, other);
    h.ts = t0 + DEDUP_WINDOW_MS - 1;
    assert_eq!(h.with_id("same", send(ta, "again")).unwrap(), first);
    assert_eq!(remembered(&h.s), 2);
    h.ts = t0 + DEDUP_WINDOW_MS;
    h.tick();
    assert_eq!(remembered(&h.s), 0);
}

#[test]
fn dedup_forgets_deleted_bodies() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.user("b");
    let send = Command::Send {
        session: ta,
        target: Target::User("b".into()),
        body: "secret".into(),
    };
    let Outcome::Sent(m) = h.with_id("r", send.clone()).unwrap() else {
        panic!()
    };
    h.ok(Command::DeleteMessages {
        session: ta,
        ids: vec![m.id],
    });
    let Outcome::Sent(again) = h.with_id("r", send).unwrap() else {
        panic!()
    };
    assert_eq!((again.id, again.body.as_str()), (m.id, ""));
    let bytes = bytes_of(&h.s);
    assert!(!bytes.windows(6).any(|w| w == b"secret"));
}

// -------------------------------------------------------------------- events

#[test]
fn events_are_numbered_and_stamped_with_the_entry_index() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.user("b");
    assert_eq!(h.s.last_event_seq(), 0);
    h.index = 41;
    // One entry, two proposals: Created + Message, then Message.
    let results = h.batch(vec![
        Proposal {
            request_id: None,
            command: Command::Send {
                session: ta,
                target: Target::User("b".into()),
                body: "1".into(),
            },
        },
        Proposal {
            request_id: None,
            command: Command::Send {
                session: ta,
                target: Target::Conversation(1),
                body: "2".into(),
            },
        },
    ]);
    assert!(results.iter().all(|r| r.is_ok()));
    let ev = h.take();
    assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(ev.iter().all(|e| e.index == 42));
    assert_eq!(h.s.last_event_seq(), 3);
    let Outcome::Sent(m) = results[1].clone().unwrap() else {
        panic!()
    };
    assert_eq!(m.index, 42);
    h.dm(ta, "b", "3");
    let ev = h.take();
    assert_eq!((ev[0].seq, ev[0].index), (4, 43));
    assert_eq!(kinds(&ev).len(), 1);
}

#[test]
fn failed_commands_produce_no_events() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.take();
    let e = h.err(Command::CreateGroup {
        session: ta,
        name: "g".into(),
        members: vec!["missing".into()],
    });
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(h.take().is_empty());
    assert_eq!(h.s.last_event_seq(), 0);
}

// ------------------------------------------------------------- determinism

pub(crate) fn script(variant: &str) -> Vec<Batch> {
    // A request id per command, as short as the services require.
    let p = |command| Proposal {
        request_id: Some(hex::encode(
            &Sha256::digest(format!("{command:?}").as_bytes())[..16],
        )),
        command,
    };
    let login = |name: &str| Command::CreateSession {
        username: name.into(),
        verified_hash: hash(name),
        token_hash: tok(name),
        expires_ms: FAR,
    };
    vec![
        Batch {
            ts_ms: 100,
            proposals: vec![
                p(create_account("a")),
                p(create_account("b")),
                p(login("a")),
                p(login("b")),
            ],
        },
        Batch {
            ts_ms: 90,
            proposals: vec![
                p(Command::Send {
                    session: tok("a"),
                    target: Target::User("b".into()),
                    body: variant.into(),
                }),
                p(Command::SubscriptionOpened {
                    replica: 1,
                    subscription: 1,
                    session: tok("b"),
                }),
            ],
        },
        Batch {
            ts_ms: 200,
            proposals: vec![p(Command::ReadUnread {
                session: tok("b"),
                conversation: None,
                limit: 10,
            })],
        },
    ]
}

pub(crate) fn replay(batches: &[Batch]) -> (ChatState, Vec<CommandResult>, Vec<ChatEvent>) {
    let mut s = ChatState::default();
    let mut events = Vec::new();
    let mut results = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        results.extend(s.apply_batch(i as u64 + 1, b, &mut events));
    }
    (s, results, events)
}

#[test]
fn same_log_same_state_and_digest() {
    let (s1, r1, e1) = replay(&script("hello"));
    let (s2, r2, e2) = replay(&script("hello"));
    assert_eq!(s1, s2);
    assert_eq!(s1.digest(), s2.digest());
    assert_eq!((r1, e1), (r2, e2));
    assert_eq!(s1.history_digest(), s2.history_digest());
    let (s3, _, _) = replay(&script("hullo"));
    assert_ne!(s1.digest(), s3.digest());
    assert_ne!(s1.history_digest(), s3.history_digest());
    assert_ne!(ChatState::default().digest(), s1.digest());
    assert_ne!(ChatState::default().history_digest(), s1.history_digest());
}

#[test]
fn history_digest_continues_after_a_snapshot() {
    let batches = script("snap");
    let (full, _, _) = replay(&batches);
    // Replay the first half, "snapshot" (serialize), restore, replay the rest.
    let half = batches.len() / 2;
    let (first, _, _) = replay(&batches[..half]);
    let mut restored = restored(&first);
    let mut events = Vec::new();
    for (i, b) in batches.iter().enumerate().skip(half) {
        restored.apply_batch(i as u64 + 1, b, &mut events);
    }
    assert_eq!(restored.history_digest(), full.history_digest());
}

#[test]
fn snapshot_round_trip() {
    let (s, _, _) = replay(&script("round trip"));
    let back = restored(&s);
    assert_eq!(back, s);
    assert_eq!(back.digest(), s.digest());
    // The restored state keeps working identically.
    let mut a = s;
    let mut b = back;
    let batch = script("x").remove(1);
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    assert_eq!(
        a.apply_batch(9, &batch, &mut ea),
        b.apply_batch(9, &batch, &mut eb)
    );
    assert_eq!((a.digest(), ea), (b.digest(), eb));
}

// --------------------------------------------------------------------- reads

#[test]
fn list_accounts_patterns_and_paging() {
    let mut h = H::new();
    for n in ["alice", "Albert", "bob", "alfred", "zed", "al", "Bobby"] {
        h.ok(create_account(n));
    }
    let names = |(v, next): (Vec<AccountView>, Option<String>)| {
        (v.into_iter().map(|a| a.username).collect::<Vec<_>>(), next)
    };
    assert_eq!(
        names(h.s.list_accounts("", "", 100)).0,
        vec!["al", "Albert", "alfred", "alice", "bob", "Bobby", "zed"]
    );
    assert_eq!(
        names(h.s.list_accounts("AL*", "", 100)).0,
        vec!["al", "Albert", "alfred", "alice"]
    );
    assert_eq!(
        names(h.s.list_accounts("al?*", "", 100)).0,
        vec!["Albert", "alfred", "alice"]
    );
    assert_eq!(
        names(h.s.list_accounts("*b*", "", 100)).0,
        vec!["Albert", "bob", "Bobby"]
    );
    assert_eq!(names(h.s.list_accounts("b?b", "", 100)).0, vec!["bob"]);
    assert_eq!(
        names(h.s.list_accounts("nobody", "", 100)).0,
        Vec::<String>::new()
    );
    // Paging: the cursor is the last lowercase name, only if more remain.
    assert_eq!(
        names(h.s.list_accounts("al*", "", 2)),
        (vec!["al".into(), "Albert".into()], Some("albert".into()))
    );
    assert_eq!(
        names(h.s.list_accounts("al*", "albert", 2)),
        (vec!["alfred".into(), "alice".into()], None)
    );
    assert_eq!(
        names(h.s.list_accounts("al*", "ALFRED", 2)),
        (vec!["alice".into()], None)
    );
    assert_eq!(
        names(h.s.list_accounts("*", "b", 2)),
        (vec!["bob".into(), "Bobby".into()], Some("bobby".into()))
    );
    assert_eq!(
        names(h.s.list_accounts("*", "bobby", 2)),
        (vec!["zed".into()], None)
    );
    assert_eq!(names(h.s.list_accounts("*", "zzz", 2)), (vec![], None));
    assert_eq!(names(h.s.list_accounts("a*", "b", 2)), (vec![], None));
}

#[test]
fn conversations_are_ordered_by_recent_activity() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    h.user("b");
    h.user("c");
    h.ts = 1_000;
    let g1 = h.group(ta, "one", &[]).id;
    let g2 = h.group(ta, "two", &[]).id; // same time: higher id first
    h.ts = 2_000;
    let dm = h.dm(ta, "c", "x").conversation;
    let order = |h: &H| {
        h.s.conversations(a)
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(order(&h), vec![dm, g2, g1]);
    h.ts = 3_000;
    h.send(ta, Target::Group("one".into()), "bump");
    assert_eq!(order(&h), vec![g1, dm, g2]);
    assert_eq!(h.s.conversations(a)[0].last_activity_ms, 3_000);
}

#[test]
fn history_pages_newest_first() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    h.user("b");
    let ids: Vec<MessageId> = (0..5).map(|i| h.dm(ta, "b", &i.to_string()).id).collect();
    let c = 1;
    let page = |before, limit| {
        let (m, more) = h.s.history(a, c, before, limit).unwrap();
        (m.iter().map(|m| m.id).collect::<Vec<_>>(), more)
    };
    assert_eq!(page(0, 2), (vec![ids[4], ids[3]], true));
    assert_eq!(page(ids[3], 2), (vec![ids[2], ids[1]], true));
    assert_eq!(page(ids[1], 2), (vec![ids[0]], false));
    assert_eq!(page(0, 5), (ids.iter().rev().copied().collect(), false));
    assert_eq!(page(ids[0], 5), (vec![], false));
}

#[test]
fn resolve_targets() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    h.user("b");
    let (c, _) = h.user("c");
    let e = h.s.resolve(a, &Target::User("b".into())).unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::NotFound, "no conversation with 'b' yet")
    );
    assert_eq!(
        h.s.resolve(a, &Target::User("ghost".into()))
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    let dm = h.dm(ta, "b", "hi").conversation;
    assert_eq!(h.s.resolve(a, &Target::User("B".into())), Ok(dm));
    let g = h.group(ta, "Crew", &[]).id;
    assert_eq!(h.s.resolve(a, &Target::Group("crew".into())), Ok(g));
    assert_eq!(
        h.s.resolve(c, &Target::Group("crew".into()))
            .unwrap_err()
            .kind,
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        h.s.resolve(c, &Target::Conversation(dm)).unwrap_err().kind,
        ErrorKind::PermissionDenied
    );
    assert_eq!(h.s.resolve(a, &Target::Conversation(dm)), Ok(dm));
    assert_eq!(
        h.s.resolve(a, &Target::Conversation(500)).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn reused_subscription_key_moves_to_the_new_user() {
    let mut h = H::new();
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let open = |session| Command::SubscriptionOpened {
        replica: 4,
        subscription: 1,
        session,
    };
    h.ok(open(ta));
    h.take();
    h.ok(open(tb));
    let flips: Vec<(String, bool)> = h
        .take()
        .iter()
        .map(|e| {
            let (u, online, _) = presence_of(e);
            (u, online)
        })
        .collect();
    assert_eq!(flips, vec![("a".into(), false), ("b".into(), true)]);
    assert!(!h.s.is_online(a) && h.s.is_online(b));
    // Reopening the same key for the same user changes nothing.
    h.ok(open(tb));
    assert!(h.take().is_empty());
}

// ------------------------------------------------------------ hostile input

/// Proposals no service would make (forged, or from a buggy replica) are
/// refused with an error, change nothing, and are not remembered.
#[test]
fn forged_proposals_are_refused_and_change_nothing() {
    let mut h = H::new();
    let (_, ta) = h.user("a");
    h.user("b");
    let g = h.group(ta, "g", &[]).id;
    h.take();
    let before = restored(&h.s);
    let huge = "x".repeat(100_000);
    let forged = [
        // Not argon2id PHC strings, or far too long.
        Command::CreateAccount {
            username: "c".into(),
            password_hash: "plain".into(),
        },
        Command::CreateAccount {
            username: "c".into(),
            password_hash: format!("$argon2id${}", "A".repeat(2 << 20)),
        },
        Command::CreateAccount {
            username: "c".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$salt$ha sh".into(),
        },
        Command::CreateAccount {
            username: "c".into(),
            password_hash: "$argon2i$v=19$m=19456,t=2,p=1$salt$hash".into(),
        },
        Command::ChangePassword {
            session: ta,
            verified_hash: hash("a"),
            new_hash: format!("$argon2id${huge}"),
        },
        // Names no account or group can have, which an error would echo.
        Command::Send {
            session: ta,
            target: Target::User(huge.clone()),
            body: "hi".into(),
        },
        Command::Send {
            session: ta,
            target: Target::Group(huge.clone()),
            body: "hi".into(),
        },
        Command::AddMember {
            session: ta,
            conversation: g,
            username: huge.clone(),
        },
        Command::CreateGroup {
            session: ta,
            name: "g2".into(),
            members: vec![huge.clone()],
        },
        Command::CreateGroup {
            session: ta,
            name: "bell\x07".into(),
            members: vec![],
        },
    ];
    for command in forged {
        let what = format!("{command:?}").chars().take(80).collect::<String>();
        let e = h.run(command).expect_err(&what);
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{what}: {e}");
        // Dedup would remember the error on every replica: it must be small.
        assert!(e.message.len() < 200, "{what}: the error echoes the input");
    }
    // A request id longer than the services allow.
    let e = h
        .with_id(
            &"r".repeat(MAX_REQUEST_ID_LEN + 1),
            Command::Send {
                session: ta,
                target: Target::User("b".into()),
                body: "hi".into(),
            },
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("request_id"), "{e}");
    assert!(h.take().is_empty(), "no events");
    // Nothing changed but the history chain, which covers every batch.
    let mut after = restored(&h.s);
    assert_ne!(after.history, before.history);
    after.history = before.history;
    assert_eq!(after, before, "a refused proposal changed the state");
    // The longest request id the services allow still works.
    let id = "r".repeat(MAX_REQUEST_ID_LEN);
    let sent = h.with_id(
        &id,
        Command::Send {
            session: ta,
            target: Target::User("b".into()),
            body: "hi".into(),
        },
    );
    assert!(matches!(sent, Ok(Outcome::Sent(_))), "{sent:?}");
    // A real hash of the default parameters is accepted.
    h.ok(Command::ChangePassword {
        session: ta,
        verified_hash: hash("a"),
        new_hash: "$argon2id$v=19$m=19456,t=2,p=1$LZE2/AHF3D9xpX9cVZHC/Q$3GkX48ImIBi3C/dzB1HB35sDkNUV3V8pP71+AuMoHpw".into(),
    });
}

// -------------------------------------------------------------------- search

/// Ids and bodies `user` finds for `query`: in `conversation` or all.
fn found(
    s: &ChatState,
    user: UserId,
    conversation: Option<ConversationId>,
    query: &str,
    before: MessageId,
    limit: usize,
) -> (Vec<(MessageId, String)>, bool) {
    let query = search::Query::new(query).unwrap();
    let (page, more) = s
        .search(user, conversation, &query, before, limit)
        .expect("search");
    (page.into_iter().map(|m| (m.id, m.body)).collect(), more)
}

/// Search through the state machine over `store`: case-insensitive beyond
/// ASCII, only in the caller's conversations, newest first and paged,
/// current text only, after leaving and account deletion. `checkpoint`
/// runs between steps (a disk store writes its changes there: see
/// `storage::disk_store`'s tests, which run this too).
pub(crate) fn search_scenario(
    store: Box<dyn store::Store>,
    checkpoint: &mut dyn FnMut(&mut ChatState),
) {
    let mut h = H::over(store);
    let (a, ta) = h.user("a");
    let (b, tb) = h.user("b");
    let (c, tc) = h.user("c");
    let club = h.group(ta, "club", &["b"]).id;
    let ab = h.dm(ta, "b", "Meet at the ÉCOLE at noon");
    let street = h.send(tb, Target::Conversation(club), "Die Straße ist lang");
    checkpoint(&mut h.s);
    let bc = h.dm(tb, "c", "secret école plan");
    let hello = h.send(ta, Target::Conversation(club), "hello world");
    checkpoint(&mut h.s);

    // Only the caller's conversations; case and ß/ss ignored.
    let ids =
        |r: (Vec<(MessageId, String)>, bool)| r.0.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(ids(found(&h.s, a, None, "école", 0, 10)), vec![ab.id]);
    assert_eq!(
        ids(found(&h.s, b, None, "ÉCOLE", 0, 10)),
        vec![bc.id, ab.id]
    );
    assert_eq!(ids(found(&h.s, c, None, "École", 0, 10)), vec![bc.id]);
    assert_eq!(ids(found(&h.s, a, None, "STRASSE", 0, 10)), vec![street.id]);
    assert_eq!(
        ids(found(&h.s, a, Some(club), "straße", 0, 10)),
        vec![street.id]
    );
    assert_eq!(
        ids(found(&h.s, a, Some(ab.conversation), "straße", 0, 10)),
        Vec::<u64>::new()
    );
    // One- and two-character queries, and a text's last characters.
    assert_eq!(ids(found(&h.s, a, None, "É", 0, 10)), vec![ab.id]);
    assert_eq!(ids(found(&h.s, a, None, "ng", 0, 10)), vec![street.id]);
    assert_eq!(ids(found(&h.s, a, None, "x", 0, 10)), Vec::<u64>::new());
    // Others' conversations are refused as History refuses them.
    let query = search::Query::new("plan").unwrap();
    let e =
        h.s.search(a, Some(bc.conversation), &query, 0, 10)
            .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    let e = h.s.search(a, Some(999), &query, 0, 10).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);

    // Pages, newest first, some written before a checkpoint.
    let mut pages = Vec::new();
    for n in 0..5 {
        pages.push(h.dm(ta, "b", &format!("Page {n}")).id);
        if n == 2 {
            checkpoint(&mut h.s);
        }
    }
    let (first, more) = found(&h.s, b, None, "page", 0, 2);
    assert_eq!(
        first,
        vec![(pages[4], "Page 4".into()), (pages[3], "Page 3".into())]
    );
    assert!(more);
    let (second, more) = found(&h.s, b, None, "page", pages[3], 2);
    assert_eq!(
        second.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![pages[2], pages[1]]
    );
    assert!(more);
    let (last, more) = found(&h.s, b, None, "page", pages[1], 2);
    assert_eq!(last.iter().map(|m| m.0).collect::<Vec<_>>(), vec![pages[0]]);
    assert!(!more);

    // Current text only: an edit and a deletion, before and after a
    // checkpoint.
    h.ok(edit(ta, hello.id, "goodbye world"));
    h.ok(Command::DeleteMessages {
        session: ta,
        ids: vec![pages[3]],
    });
    for _ in 0..2 {
        assert_eq!(ids(found(&h.s, b, None, "hello", 0, 10)), Vec::<u64>::new());
        assert_eq!(ids(found(&h.s, b, None, "GOODBYE", 0, 10)), vec![hello.id]);
        assert_eq!(
            ids(found(&h.s, b, None, "page 3", 0, 10)),
            Vec::<u64>::new()
        );
        assert_eq!(ids(found(&h.s, b, None, "page", 0, 10)).len(), 4);
        checkpoint(&mut h.s);
    }

    // Leaving a group leaves its messages out of the search.
    h.ok(Command::LeaveGroup {
        session: ta,
        conversation: club,
    });
    assert_eq!(
        ids(found(&h.s, a, None, "straße", 0, 10)),
        Vec::<u64>::new()
    );
    let e = h.s.search(a, Some(club), &query, 0, 10).unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert_eq!(ids(found(&h.s, b, None, "straße", 0, 10)), vec![street.id]);
    checkpoint(&mut h.s);

    // A deleted peer's messages stay findable by the other member; once
    // both sides are gone the conversation is.
    h.ok(Command::DeleteAccount {
        session: tc,
        verified_hash: hash("c"),
    });
    assert_eq!(ids(found(&h.s, b, None, "secret", 0, 10)), vec![bc.id]);
    checkpoint(&mut h.s);
    h.ok(Command::DeleteAccount {
        session: tb,
        verified_hash: hash("b"),
    });
    assert_eq!(ids(found(&h.s, a, None, "page", 0, 10)).len(), 4);
    assert_eq!(
        ids(found(&h.s, a, None, "secret", 0, 10)),
        Vec::<u64>::new()
    );
    checkpoint(&mut h.s);
    assert_eq!(ids(found(&h.s, a, None, "page", 0, 10)).len(), 4);
    assert_eq!(found(&h.s, b, None, "page", 0, 10).0.len(), 0);
}

#[test]
fn search_finds_current_text_in_own_conversations_only() {
    search_scenario(Box::new(store::MemoryStore::default()), &mut |_| {});
}
