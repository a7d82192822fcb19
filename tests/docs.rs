//! The generated man pages and shell completions (`examples/docs.rs`):
//! every program gets them, and they follow the clap definitions.

#[test]
fn man_pages_and_completions_cover_every_program_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let docs = raftchat_testkit::bins::path("examples/docs");
    let out = std::process::Command::new(docs)
        .arg(dir.path())
        .output()
        .expect("run the docs example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |path: &str| {
        std::fs::read_to_string(dir.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    // Flags of each program, as clap knows them, reach its page and scripts.
    for (page, flag) in [
        ("man/chatd.1", "\\-\\-server\\-storage"),
        ("man/chatctl.1", "\\-\\-servers"),
        ("man/chatctl-send.1", "\\-\\-as"),
        ("man/chat-tui.1", "\\-\\-servers"),
    ] {
        let text = read(page);
        assert!(text.contains(".TH"), "{page} is no man page: {text}");
        assert!(text.contains(flag), "{page} lacks {flag}");
    }
    for (script, word) in [
        ("completions/chatd.bash", "--server-storage"),
        ("completions/chatctl.bash", "members"),
        ("completions/_chatctl", "--utc"),
        ("completions/chat-tui.fish", "servers"),
    ] {
        assert!(read(script).contains(word), "{script} lacks {word}");
    }
}
