//! chatctl's command line, declared with clap. Every global flag can also
//! come from the environment (`CHAT_SERVERS`, `CHAT_TIMEOUT_MS`, ...), so
//! scripts and test harnesses can configure it once.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use raftchat_client::{Target, DEFAULT_SERVERS};

/// Command-line client for a raftchat cluster.
///
/// Passwords are read from CHAT_PASSWORD (and CHAT_NEW_PASSWORD for
/// `passwd`), or prompted for without echo.
#[derive(Debug, Parser)]
#[command(name = "chatctl", version)]
pub struct Cli {
    /// Replicas to talk to: comma-separated host:port list.
    #[arg(
        long,
        env = "CHAT_SERVERS",
        value_name = "LIST",
        default_value = DEFAULT_SERVERS,
        value_delimiter = ',',
        global = true
    )]
    pub servers: Vec<String>,

    /// Time allowed for one attempt against one replica, in milliseconds.
    #[arg(
        long,
        env = "CHAT_TIMEOUT_MS",
        value_name = "N",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub timeout_ms: u64,

    /// Total time allowed for one operation, fail-over retries included, in
    /// milliseconds.
    #[arg(
        long,
        env = "CHAT_DEADLINE_MS",
        value_name = "N",
        default_value_t = 10000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub deadline_ms: u64,

    /// The cluster's CA certificate (PEM): talk TLS to the replicas and
    /// accept only replicas whose certificate it signed.
    #[arg(long, env = "CHAT_CA", value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,

    /// A client certificate (PEM) to present, e.g. `admin.pem` for
    /// `members add` and `members remove`. Needs --key and --ca.
    #[arg(long, env = "CHAT_CERT", value_name = "FILE", global = true, requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(
        long,
        env = "CHAT_KEY",
        value_name = "FILE",
        global = true,
        requires = "cert"
    )]
    pub key: Option<PathBuf>,

    /// Print one JSON object per line instead of text (CHAT_JSON=1 works too).
    #[arg(
        long,
        env = "CHAT_JSON",
        global = true,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub json: bool,

    /// Show times in UTC instead of the local time zone (CHAT_UTC=1 works
    /// too). Either way each time carries its UTC offset.
    #[arg(
        long,
        env = "CHAT_UTC",
        global = true,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub utc: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The account a command acts as; it logs in first and out at the end.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct AsUser {
    /// Act as this user.
    #[arg(long = "as", value_name = "USER", env = "CHAT_USER")]
    pub user: String,
}

/// chatctl's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every replica: role, term, leader, commit/applied index, digest.
    Status,

    /// Create an account.
    Register {
        /// The new account's name.
        user: String,
    },

    /// List accounts with their presence.
    Accounts {
        /// Wildcard pattern (`*`, `?`), case-insensitive; default all.
        pattern: Option<String>,
        /// Start after this name (for paging).
        #[arg(long, value_name = "NAME")]
        after: Option<String>,
        /// At most this many accounts.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Log in as this user first: only signed-in users may list accounts.
        #[command(flatten)]
        who: AsUser,
    },

    /// Send a message to a user or to a #group.
    Send {
        #[command(flatten)]
        who: AsUser,
        /// Answer this message (of the same conversation).
        #[arg(long, value_name = "ID")]
        reply_to: Option<u64>,
        /// Recipient: a user name, or #name for a group.
        #[arg(value_name = "TO", value_parser = parse_target)]
        to: Target,
        /// The message; several words are joined with spaces.
        #[arg(value_name = "TEXT", required = true, num_args = 1..)]
        text: Vec<String>,
    },

    /// Read (and mark read) the oldest unread messages.
    Read {
        #[command(flatten)]
        who: AsUser,
        /// Only this conversation: a user name, #group or id:N.
        #[arg(long, value_name = "PEER|#GROUP|id:N", value_parser = parse_target)]
        with: Option<Target>,
        /// At most this many messages.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
    },

    /// Show a conversation's messages, oldest of the page first.
    History {
        #[command(flatten)]
        who: AsUser,
        /// The conversation: a user name, #group or id:N (its id).
        #[arg(long, value_name = "PEER|#GROUP|id:N", value_parser = parse_target)]
        with: Target,
        /// Only messages older than this message id.
        #[arg(long, value_name = "ID")]
        before: Option<u64>,
        /// At most this many messages.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
    },

    /// Find messages containing a text (ignoring case), newest first, in
    /// all your conversations or one.
    Search {
        #[command(flatten)]
        who: AsUser,
        /// Only this conversation: a user name, #group or id:N.
        #[arg(long, value_name = "PEER|#GROUP|id:N", value_parser = parse_target)]
        with: Option<Target>,
        /// Only messages older than this message id.
        #[arg(long, value_name = "ID")]
        before: Option<u64>,
        /// At most this many messages (the server allows up to 100).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
        /// The text to find; several words are joined with spaces.
        #[arg(value_name = "QUERY", required = true, num_args = 1..)]
        query: Vec<String>,
    },

    /// List your conversations with unread counts.
    Conversations {
        #[command(flatten)]
        who: AsUser,
    },

    /// Mark a conversation read up to a message (default: the newest).
    MarkRead {
        #[command(flatten)]
        who: AsUser,
        /// The conversation: a user name, #group or id:N (its id).
        #[arg(long, value_name = "PEER|#GROUP|id:N", value_parser = parse_target)]
        with: Target,
        /// The newest message id to mark read.
        #[arg(long, value_name = "ID")]
        up_to: Option<u64>,
    },

    /// Delete some of your own messages, for everyone.
    DeleteMessages {
        #[command(flatten)]
        who: AsUser,
        /// Message ids.
        #[arg(value_name = "ID", required = true, num_args = 1..)]
        ids: Vec<u64>,
    },

    /// Replace the text of one of your own messages, for everyone.
    Edit {
        #[command(flatten)]
        who: AsUser,
        /// The message id.
        #[arg(value_name = "ID")]
        id: u64,
        /// The new text; several words are joined with spaces.
        #[arg(value_name = "TEXT", required = true, num_args = 1..)]
        text: Vec<String>,
    },

    /// React to a message with an emoji; the same emoji again removes it.
    React {
        #[command(flatten)]
        who: AsUser,
        /// The message id.
        #[arg(value_name = "ID")]
        id: u64,
        /// The emoji (1-32 bytes, no spaces).
        #[arg(value_name = "EMOJI")]
        emoji: String,
    },

    /// Delete your account.
    DeleteAccount {
        #[command(flatten)]
        who: AsUser,
    },

    /// Change your password (new one from CHAT_NEW_PASSWORD or a prompt).
    Passwd {
        #[command(flatten)]
        who: AsUser,
    },

    /// Create, join or leave groups.
    #[command(subcommand)]
    Group(GroupCommand),

    /// List, add or remove replicas without downtime (like `etcdctl member`).
    ///
    /// With no subcommand, lists the members. Any reachable replica will do:
    /// followers hand the change to the leader.
    Members {
        #[command(subcommand)]
        action: Option<MembersCommand>,
    },

    /// Make the cluster's TLS certificates (no server needed).
    #[command(subcommand)]
    Certs(CertsCommand),

    /// Tell a conversation's other members you are typing (they see it
    /// for 5 s; nothing is stored).
    Typing {
        #[command(flatten)]
        who: AsUser,
        /// The conversation: a user name, #group or id:N (its id).
        #[arg(value_name = "PEER|#GROUP|id:N", value_parser = parse_target)]
        to: Target,
    },

    /// Print your events as they happen, one per line, until Ctrl-C.
    Watch {
        #[command(flatten)]
        who: AsUser,
        /// Resume after this event sequence number.
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
}

/// `chatctl group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group with you and the given members in it.
    Create {
        #[command(flatten)]
        who: AsUser,
        /// The group's name (a leading # is ignored).
        #[arg(value_name = "NAME", value_parser = parse_group)]
        name: String,
        /// Other members.
        #[arg(value_name = "MEMBER")]
        members: Vec<String>,
    },
    /// Add a member to a group you are in.
    Add {
        #[command(flatten)]
        who: AsUser,
        /// The group's name (a leading # is ignored).
        #[arg(value_name = "NAME", value_parser = parse_group)]
        name: String,
        /// The user to add.
        #[arg(value_name = "MEMBER")]
        member: String,
    },
    /// Leave a group.
    Leave {
        #[command(flatten)]
        who: AsUser,
        /// The group's name (a leading # is ignored).
        #[arg(value_name = "NAME", value_parser = parse_group)]
        name: String,
    },
}

/// `chatctl certs ...`
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a new CA (`ca.pem`, `ca.key`), a certificate for every replica
    /// (`replica-N.pem`, `replica-N.key`, naming the host of its URL) and
    /// the admin certificate (`admin.pem`, `admin.key`) into DIR. Refuses
    /// to overwrite any of them.
    Init {
        /// Where to write them (created, mode 0700).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// EVERY replica as `ID=HOST:PORT`, e.g.
        /// `1=host1:7001,2=host2:7001,3=host3:7001`.
        #[arg(long, value_name = "ID=HOST:PORT,...", value_delimiter = ',', value_parser = parse_member, required = true)]
        replica_urls: Vec<(u64, String)>,
    },
    /// Issue `replica-ID.pem`/`.key` with DIR's existing CA, for a replica
    /// about to be added (`members add`).
    AddReplica {
        /// The directory holding `ca.pem` and `ca.key`.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The new replica as ID=HOST:PORT.
        #[arg(value_name = "ID=HOST:PORT", value_parser = parse_member)]
        member: (u64, String),
    },
}

/// `chatctl members ...`
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List voters and learners as the leader sees them.
    List,
    /// Add a replica: start it first with `chatd --join`, then run this. It
    /// joins as a learner, catches up, and is promoted to voter.
    Add {
        /// The new replica as ID=HOST:PORT (the address the others reach it at).
        #[arg(value_name = "ID=HOST:PORT", value_parser = parse_member)]
        member: (u64, String),
        /// How long the new replica may take to catch up before the add is
        /// abandoned (it then stays a non-voting learner).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        catch_up_secs: u64,
    },
    /// Remove a replica from the cluster; stop its process afterwards.
    Remove {
        /// The replica's id.
        #[arg(value_name = "ID")]
        id: u64,
    },
}

pub use raftchat_proto::contract::parse_member;

/// `bob` is a user, `#team` a group.
pub fn parse_target(text: &str) -> Result<Target, String> {
    Target::parse(text).map_err(|err| err.message)
}

/// A group name as typed, with or without its leading `#`.
pub fn parse_group(text: &str) -> Result<String, String> {
    let name = text.trim();
    let name = name.strip_prefix('#').unwrap_or(name).trim();
    if name.is_empty() {
        Err("a group needs a name".to_string())
    } else {
        Ok(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("chatctl").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_parse_anywhere() {
        let cli = parse(&[
            "status",
            "--servers",
            "a:1,b:2",
            "--timeout-ms",
            "50",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.servers, vec!["a:1", "b:2"]);
        assert_eq!(cli.timeout_ms, 50);
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Status));
    }

    #[test]
    fn send_takes_a_target_and_joins_words() {
        let cli = parse(&["send", "--as", "alice", "#team", "hello", "world"]).unwrap();
        match cli.command {
            Command::Send {
                who,
                to,
                text,
                reply_to,
            } => {
                assert_eq!(reply_to, None);
                assert_eq!(who.user, "alice");
                assert_eq!(to, Target::Group("team".into()));
                assert_eq!(text.join(" "), "hello world");
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = parse(&["send", "--as", "alice", "bob", "hi"]).unwrap();
        assert!(matches!(cli.command, Command::Send { to: Target::User(ref u), .. } if u == "bob"));
        let cli = parse(&["send", "--as", "alice", "--reply-to", "7", "bob", "yes"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Send {
                reply_to: Some(7),
                ..
            }
        ));
    }

    #[test]
    fn read_history_and_mark_read_options() {
        let cli = parse(&["read", "--as", "a", "--with", "#g", "--limit", "5"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Read { with: Some(Target::Group(ref g)), limit: 5, .. } if g == "g"
        ));
        let cli = parse(&["history", "--as", "a", "--with", "bob", "--before", "9"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::History {
                before: Some(9),
                limit: 20,
                ..
            }
        ));
        let cli = parse(&["search", "--as", "a", "--with", "#g", "big", "Straße"]).unwrap();
        match cli.command {
            Command::Search {
                with: Some(Target::Group(g)),
                before: None,
                limit: 20,
                query,
                ..
            } => {
                assert_eq!(g, "g");
                assert_eq!(query, vec!["big", "Straße"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            parse(&["search", "--as", "a"]).is_err(),
            "a query is required"
        );
        let cli = parse(&["mark-read", "--as", "a", "--with", "bob", "--up-to", "7"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::MarkRead { up_to: Some(7), .. }
        ));
    }

    #[test]
    fn group_subcommands_strip_the_hash() {
        let cli = parse(&["group", "create", "--as", "a", "#team", "b", "c"]).unwrap();
        match cli.command {
            Command::Group(GroupCommand::Create { name, members, .. }) => {
                assert_eq!(name, "team");
                assert_eq!(members, vec!["b", "c"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = parse(&["group", "leave", "--as", "a", "team"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Group(GroupCommand::Leave { ref name, .. }) if name == "team"
        ));
    }

    #[test]
    fn bad_input_names_the_flag() {
        let err = parse(&["send", "alice", "hi"]).unwrap_err();
        // `--as` may come from CHAT_USER; only check when it is not set.
        if std::env::var_os("CHAT_USER").is_none() {
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
            assert!(err.to_string().contains("--as <USER>"), "{err}");
        }
        let err = parse(&["history", "--as", "a", "--with", "bob", "--limit", "x"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("--limit"), "{err}");
        let err = parse(&["read", "--as", "a", "--with", "#"]).unwrap_err();
        assert!(err.to_string().contains("a group needs a name"), "{err}");
        let err = parse(&["status", "--timeout-ms", "0"]).unwrap_err();
        assert!(err.to_string().contains("--timeout-ms"), "{err}");
        let err = parse(&["delete-messages", "--as", "a"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn members_subcommands() {
        let cli = parse(&["members"]).unwrap();
        assert!(matches!(cli.command, Command::Members { action: None }));
        let cli = parse(&["members", "add", "6=h6:7006"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Members { action: Some(MembersCommand::Add { member: (6, ref u), catch_up_secs: 60 }) } if u == "h6:7006"
        ));
        let cli = parse(&["members", "remove", "3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Members {
                action: Some(MembersCommand::Remove { id: 3 })
            }
        ));
        for bad in ["6", "x=h:1", "0=h:1", "6=h", "6=:1"] {
            let err = parse(&["members", "add", bad]).unwrap_err().to_string();
            assert!(err.contains("ID=HOST:PORT"), "{bad}: {err}");
        }
    }

    #[test]
    fn group_names_and_targets() {
        assert_eq!(parse_group("#team").unwrap(), "team");
        assert_eq!(parse_group("team").unwrap(), "team");
        assert!(parse_group(" # ").is_err());
        assert_eq!(parse_target("#x").unwrap(), Target::Group("x".into()));
        assert_eq!(parse_target("x").unwrap(), Target::User("x".into()));
    }
}
