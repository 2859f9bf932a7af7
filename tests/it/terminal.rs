//! The client at a real terminal: prompt, line editing, completion and
//! progress bar, driven through a pseudo-terminal made by `script`.

use std::fs;

use crate::support::*;

#[test]
fn prompt_with_completion_and_progress_at_a_terminal() {
    if !require("`script` (util-linux), for a pseudo-terminal", has_script()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("report-2026.txt", b"quarterly numbers");
    // Tab completes a local path after `put`, then a remote name after `get`.
    let keys: Vec<(u64, &[u8])> = vec![
        (400, b"put rep\t\r"),
        (400, b"ls\r"),
        (400, b"get rep\t copy.txt\r"),
        (400, b"quit\r"),
    ];
    let out = at_terminal(&sb, &server, &[], keys);
    let screen = stdout(&out);
    assert!(screen.contains(">>: "), "the prompt is shown: {screen}");
    assert!(
        screen.contains("stored report-2026.txt (17 bytes"),
        "{screen}"
    );
    assert!(
        screen.contains("saved report-2026.txt to copy.txt"),
        "{screen}"
    );
    assert!(
        screen.contains("B/s eta"),
        "a progress bar was drawn: {screen}"
    );
    assert_eq!(
        fs::read(sb.root().join("report-2026.txt")).unwrap(),
        b"quarterly numbers"
    );
    assert_eq!(
        fs::read(sb.work().join("copy.txt")).unwrap(),
        b"quarterly numbers"
    );
}
