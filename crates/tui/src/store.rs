//! The local store: the ONLY module that touches files for the state.
//!
//! What the user typed and has not got committed yet survives a quit, a
//! crash or `kill -9`: the outbox (each message with its request id) and
//! the draft of each conversation live under
//! `$XDG_STATE_HOME/raftchat/<servers-hash>/<user>/` (`~/.local/state`
//! when `XDG_STATE_HOME` is unset), as `outbox.json` and `drafts.json`.
//! Every write is atomic (a temporary file, fsync, rename, fsync of the
//! directory): a crash leaves the old file or the new one, never half.
//!
//! The files are read back as hostile input: too big, not JSON, or with a
//! value no client would write (an over-long body or request id, a bad
//! user name), a file is renamed aside (`*.corrupt-<ms>`) and reported,
//! never trusted and never a panic.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use raftchat_proto::contract::MAX_BODY_BYTES;
use serde::{Deserialize, Serialize};

use crate::event::{Draft, Effect, QueuedMessage, SendTo, StoreEvent};

const OUTBOX_FILE: &str = "outbox.json";
const DRAFTS_FILE: &str = "drafts.json";
/// The on-disk format; a file of another version is set aside.
const VERSION: u32 = 1;
/// Larger files are not read (1,000 messages of 4 KiB fit).
const MAX_FILE_BYTES: u64 = 8 << 20;
/// The server's limit on request ids.
const MAX_REQUEST_ID_BYTES: usize = 64;
/// The server's limit on user names.
const MAX_USERNAME_BYTES: usize = 32;

/// Where one cluster's saved state lives; `None` when no state directory
/// is known (no `XDG_STATE_HOME`, no `HOME`).
///
/// One chat-tui at a time keeps a user's files: each writes its whole
/// outbox, so a second one would write the first one's messages away. The
/// first to sign in holds a lock (`flock` on `lock` in the user's
/// directory) until it signs out or exits; another is told, and keeps
/// its unsent text in memory only.
#[derive(Debug)]
pub struct Store {
    dir: Option<PathBuf>,
    /// The lock of the user whose files this process keeps.
    held: Option<File>,
}

impl Store {
    /// The store for the cluster of `servers`, in the user's state directory.
    pub fn for_servers(servers: &[String]) -> Self {
        let state_home = crate::config::xdg_dir("XDG_STATE_HOME", &[".local", "state"]);
        Self {
            dir: state_home.map(|s| s.join("raftchat").join(servers_hash(servers))),
            held: None,
        }
    }

    /// A store rooted at `dir` (tests).
    pub fn at(dir: PathBuf) -> Self {
        Self {
            dir: Some(dir),
            held: None,
        }
    }

    /// Carries out a local effect; what the app must hear back, if anything.
    /// `None` for an effect that is not the store's.
    pub fn execute(&mut self, effect: &Effect) -> Option<Option<StoreEvent>> {
        let result = match effect {
            Effect::LoadSaved { user } => return Some(Some(self.load(user))),
            Effect::CloseSaved => {
                self.held = None;
                return Some(None);
            }
            Effect::SaveOutbox { user, messages } => self.save_outbox(user, messages),
            Effect::SaveDrafts { user, drafts } => self.save_drafts(user, drafts),
            _ => return None,
        };
        Some(result.err().map(|error| StoreEvent::SaveFailed { error }))
    }

    /// The directory of `user`'s files.
    pub fn user_dir(&self, user: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(dir_name(user)))
    }

    /// What an earlier run left for `user`; unreadable files are set aside.
    /// Takes `user`'s lock (see [`Store`]); if another chat-tui holds it,
    /// nothing is read and the store is not available to this one.
    pub fn load(&mut self, user: &str) -> StoreEvent {
        self.held = None;
        let Some(dir) = self.user_dir(user) else {
            return StoreEvent::Loaded {
                user: user.to_string(),
                outbox: Vec::new(),
                drafts: Vec::new(),
                problems: vec![
                    "No state directory (set XDG_STATE_HOME or HOME): unsent messages \
                     are not kept when chat-tui exits."
                        .to_string(),
                ],
                available: false,
            };
        };
        match lock(&dir) {
            Ok(Some(file)) => self.held = Some(file),
            Ok(None) => {
                return StoreEvent::Loaded {
                    user: user.to_string(),
                    outbox: Vec::new(),
                    drafts: Vec::new(),
                    problems: vec![format!(
                        "Another chat-tui is signed in as {user} on this computer and keeps \
                         the unsent messages: this one keeps its own in memory only."
                    )],
                    available: false,
                };
            }
            // Best effort: without a lock (say, a file system without
            // locks) the files are used as before.
            Err(_) => {}
        }
        let mut problems = Vec::new();
        let outbox = read_checked(&dir.join(OUTBOX_FILE), &mut problems, |file: OutboxFile| {
            check_version(file.version)?;
            file.messages
                .into_iter()
                .map(OnDiskMessage::check)
                .collect()
        });
        let drafts = read_checked(&dir.join(DRAFTS_FILE), &mut problems, |file: DraftsFile| {
            check_version(file.version)?;
            file.drafts.into_iter().map(OnDiskDraft::check).collect()
        });
        StoreEvent::Loaded {
            user: user.to_string(),
            outbox,
            drafts,
            problems,
            available: true,
        }
    }

    pub fn save_outbox(&self, user: &str, messages: &[QueuedMessage]) -> Result<(), String> {
        let file = OutboxFile {
            version: VERSION,
            messages: messages.iter().map(OnDiskMessage::from).collect(),
        };
        self.write(user, OUTBOX_FILE, &file)
    }

    pub fn save_drafts(&self, user: &str, drafts: &[Draft]) -> Result<(), String> {
        let file = DraftsFile {
            version: VERSION,
            drafts: drafts.iter().map(OnDiskDraft::from).collect(),
        };
        self.write(user, DRAFTS_FILE, &file)
    }

    fn write(&self, user: &str, name: &str, value: &impl Serialize) -> Result<(), String> {
        let dir = self
            .user_dir(user)
            .ok_or_else(|| "no state directory (set XDG_STATE_HOME or HOME)".to_string())?;
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
        write_atomically(&dir, name, &bytes)
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    }
}

/// Takes the lock of the user directory `dir` (made if missing): the open
/// lock file, or `None` if another process holds it. Released when the
/// file is closed, also when the process dies.
fn lock(dir: &Path) -> std::io::Result<Option<File>> {
    use std::os::fd::AsRawFd;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join("lock"))?;
    // SAFETY: flock(2) on a descriptor this function owns, open for the call.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if taken {
        return Ok(Some(file));
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(err)
    }
}

/// Writes `dir/name` so that a crash leaves either the old or the new
/// content: a private temporary file, fsync, rename over, fsync of `dir`.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    // Only the user may read what they wrote to others.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Per process, so two clients of one user never write one temp file.
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Reads and checks `path`; a file that is missing gives nothing, one that
/// cannot be used is renamed aside and reported in `problems`.
fn read_checked<F, T>(
    path: &Path,
    problems: &mut Vec<String>,
    check: impl FnOnce(F) -> Result<Vec<T>, String>,
) -> Vec<T>
where
    F: for<'de> Deserialize<'de>,
{
    let problem = match read_limited(path) {
        Ok(None) => return Vec::new(),
        Ok(Some(bytes)) => match serde_json::from_slice::<F>(&bytes) {
            Ok(file) => match check(file) {
                Ok(items) => return items,
                Err(why) => why,
            },
            Err(err) => format!("not valid: {err}"),
        },
        Err(err) => err.to_string(),
    };
    // What happened first: the notice line is as wide as the screen.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let dir = path.parent().unwrap_or(path).display();
    let report = match set_aside(path) {
        Ok(to) => format!(
            "{name} could not be used and is set aside as {} (in {dir}): {}",
            to.file_name().unwrap_or_default().to_string_lossy(),
            one_line(&problem)
        ),
        Err(err) => format!(
            "{name} could not be used (in {dir}), nor set aside ({err}): {}",
            one_line(&problem)
        ),
    };
    problems.push(one_line(&report));
    Vec::new()
}

/// The file's bytes; `None` if it does not exist.
fn read_limited(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(Some(bytes))
}

/// Renames `path` to `path.corrupt-<unix ms>`, keeping it for a human.
fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{ms}"));
    let to = path.with_file_name(name);
    fs::rename(path, &to)?;
    Ok(to)
}

/// Control characters of an error (which may quote the file) become `?`,
/// so a report never carries them to the terminal.
fn one_line(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    crate::ui::truncate(&clean, 300)
}

fn check_version(version: u32) -> Result<(), String> {
    if version == VERSION {
        Ok(())
    } else {
        Err(format!("version {version}, expected {VERSION}"))
    }
}

/// A stable name for a cluster: FNV-1a (64 bit) of its sorted replica
/// addresses, so the same servers in another order are the same cluster.
/// (std's hasher may change between Rust releases; files must not move.)
pub fn servers_hash(servers: &[String]) -> String {
    let mut sorted: Vec<&str> = servers.iter().map(|s| s.trim()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sorted.join(",").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The directory name of a user: lower case (names are unique ignoring
/// case); anything but `[a-z0-9_.-]`, and a leading dot, is `%XX`-escaped,
/// so no name (even one from a hostile server) leaves the store.
pub fn dir_name(user: &str) -> String {
    let mut out = String::new();
    for (i, byte) in user.to_ascii_lowercase().bytes().enumerate() {
        let plain =
            byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-') || (byte == b'.' && i > 0);
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

#[derive(Serialize, Deserialize)]
struct OutboxFile {
    version: u32,
    messages: Vec<OnDiskMessage>,
}

#[derive(Serialize, Deserialize)]
struct DraftsFile {
    version: u32,
    drafts: Vec<OnDiskDraft>,
}

/// Exactly one of `conversation` and `to_user`.
#[derive(Serialize, Deserialize, Default)]
struct Recipient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conversation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_user: Option<String>,
}

impl Recipient {
    fn of(to: &SendTo) -> Self {
        match to {
            SendTo::Conversation(id) => Self {
                conversation: Some(*id),
                to_user: None,
            },
            SendTo::User(name) => Self {
                conversation: None,
                to_user: Some(name.clone()),
            },
        }
    }

    fn check(self) -> Result<SendTo, String> {
        match (self.conversation, self.to_user) {
            (Some(id), None) => Ok(SendTo::Conversation(id)),
            (None, Some(name)) if valid_username(&name) => Ok(SendTo::User(name)),
            (None, Some(_)) => Err("a recipient is not a valid user name".to_string()),
            _ => Err("a recipient needs one of conversation and to_user".to_string()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct OnDiskMessage {
    request_id: String,
    #[serde(flatten)]
    to: Recipient,
    body: String,
    /// Absent in files of versions that had no replies: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    reply_to: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl OnDiskMessage {
    fn from(m: &QueuedMessage) -> Self {
        Self {
            request_id: m.request_id.clone(),
            to: Recipient::of(&m.to),
            body: m.body.clone(),
            reply_to: m.reply_to,
        }
    }

    fn check(self) -> Result<QueuedMessage, String> {
        let id_ok = !self.request_id.is_empty()
            && self.request_id.len() <= MAX_REQUEST_ID_BYTES
            && self.request_id.bytes().all(|b| b.is_ascii_graphic());
        if !id_ok {
            return Err("a request id is empty, too long or not printable".to_string());
        }
        if self.body.trim().is_empty() || self.body.len() > MAX_BODY_BYTES {
            return Err(format!(
                "a message body is empty or over {MAX_BODY_BYTES} bytes"
            ));
        }
        Ok(QueuedMessage {
            request_id: self.request_id,
            to: self.to.check()?,
            body: self.body,
            reply_to: self.reply_to,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct OnDiskDraft {
    #[serde(flatten)]
    to: Recipient,
    text: String,
}

impl OnDiskDraft {
    fn from(d: &Draft) -> Self {
        Self {
            to: Recipient::of(&d.to),
            text: d.text.clone(),
        }
    }

    fn check(self) -> Result<Draft, String> {
        // A draft may be over the limit (it is shortened before sending),
        // but not absurdly.
        if self.text.len() > 16 * MAX_BODY_BYTES {
            return Err("a draft is too long".to_string());
        }
        Ok(Draft {
            to: self.to.check()?,
            text: self.text,
        })
    }
}

/// The server's rule: 1–32 characters of `[A-Za-z0-9_.-]`.
fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(rid: &str, to: SendTo, body: &str) -> QueuedMessage {
        QueuedMessage {
            request_id: rid.into(),
            to,
            body: body.into(),
            reply_to: 0,
        }
    }

    fn loaded(store: &mut Store, user: &str) -> (Vec<QueuedMessage>, Vec<Draft>, Vec<String>) {
        match store.load(user) {
            StoreEvent::Loaded {
                outbox,
                drafts,
                problems,
                ..
            } => (outbox, drafts, problems),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn saved_messages_and_drafts_come_back_in_order_and_privately() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut store = Store::at(tmp.path().to_path_buf());
        let messages = vec![
            queued("p-1", SendTo::Conversation(3), "first\nline two"),
            queued("p-2", SendTo::User("Bob".into()), "second"),
            // A reply keeps what it answers.
            QueuedMessage {
                reply_to: 7,
                ..queued("p-3", SendTo::Conversation(3), "third")
            },
        ];
        let drafts = vec![Draft {
            to: SendTo::Conversation(3),
            text: "half a thought".into(),
        }];
        store.save_outbox("Alice", &messages).expect("save outbox");
        store.save_drafts("alice", &drafts).expect("save drafts");
        assert_eq!(loaded(&mut store, "ALICE"), (messages, drafts, vec![]));
        assert_eq!(loaded(&mut store, "bob"), (vec![], vec![], vec![]));

        let dir = store.user_dir("alice").expect("dir");
        let names: Vec<String> = fs::read_dir(&dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            3,
            "the files and the lock, no temporary files: {names:?}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(OUTBOX_FILE)), 0o600);
    }

    #[test]
    fn unusable_files_are_set_aside_and_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut store = Store::at(tmp.path().to_path_buf());
        let dir = store.user_dir("alice").expect("dir");
        fs::create_dir_all(&dir).expect("mkdir");
        let long_body = format!(
            r#"{{"version":1,"messages":[{{"request_id":"a","conversation":1,"body":"{}"}}]}}"#,
            "x".repeat(MAX_BODY_BYTES + 1)
        );
        for (outbox, why) in [
            ("{not json\u{1b}[2J", "not valid"),
            (r#"{"version":2,"messages":[]}"#, "version 2"),
            (
                r#"{"version":1,"messages":[{"request_id":"a","to_user":"../x","body":"hi"}]}"#,
                "not a valid user name",
            ),
            (
                r#"{"version":1,"messages":[{"request_id":"a","body":"hi"}]}"#,
                "one of conversation",
            ),
            (&long_body, "over 4096 bytes"),
        ] {
            fs::write(dir.join(OUTBOX_FILE), outbox).expect("write");
            fs::write(dir.join(DRAFTS_FILE), r#"{"version":1,"drafts":[]}"#).expect("write");
            let (messages, drafts, problems) = loaded(&mut store, "alice");
            assert!(messages.is_empty() && drafts.is_empty());
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(why), "{why}: {problems:?}");
            assert!(problems[0].contains("set aside as"), "{problems:?}");
            assert!(!problems[0].contains('\u{1b}'), "{problems:?}");
            assert!(!dir.join(OUTBOX_FILE).exists(), "moved away");
            // Set aside once: the next load is clean.
            assert_eq!(loaded(&mut store, "alice").2, Vec::<String>::new());
        }
        let aside = fs::read_dir(&dir)
            .expect("read dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            })
            .count();
        assert!(aside >= 1, "the bad files are kept for a human");
    }

    /// A second chat-tui of the same user neither reads nor writes the
    /// files the first keeps; once the first signs out, it can.
    #[test]
    fn one_chat_tui_at_a_time_keeps_a_users_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut first = Store::at(tmp.path().to_path_buf());
        let mut second = Store::at(tmp.path().to_path_buf());
        first
            .save_outbox("alice", &[queued("p-1", SendTo::Conversation(1), "mine")])
            .expect("save");
        assert_eq!(loaded(&mut first, "alice").0.len(), 1);
        match second.load("Alice") {
            StoreEvent::Loaded {
                outbox,
                problems,
                available,
                ..
            } => {
                assert!(outbox.is_empty() && !available);
                assert!(problems[0].contains("Another chat-tui"), "{problems:?}");
            }
            other => panic!("{other:?}"),
        }
        // Another user is not locked out.
        assert!(loaded(&mut second, "bob").2.is_empty());
        first.execute(&Effect::CloseSaved);
        assert_eq!(loaded(&mut second, "alice").0.len(), 1);
    }

    #[test]
    fn user_names_never_leave_the_store() {
        assert_eq!(dir_name("Alice"), "alice");
        assert_eq!(dir_name("a.b-c_d"), "a.b-c_d");
        assert_eq!(dir_name(".."), "%2E.");
        assert_eq!(dir_name("../../etc"), "%2E.%2F..%2Fetc");
        assert_eq!(dir_name(""), "%");
        assert!(!dir_name("a/b").contains('/'));
    }

    #[test]
    fn the_servers_hash_ignores_order_and_blanks() {
        let a = servers_hash(&["h:1".into(), "h:2".into()]);
        assert_eq!(a, servers_hash(&[" h:2".into(), "h:1".into()]));
        assert_ne!(a, servers_hash(&["h:1".into(), "h:3".into()]));
        assert_eq!(a.len(), 16);
    }
}
