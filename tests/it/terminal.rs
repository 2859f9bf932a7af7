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

#[test]
fn lines_typed_during_a_transfer_run_after_it_and_stay_out_of_the_bar() {
    if !require("`script` (util-linux), for a pseudo-terminal", has_script()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir(sb.work().join("tree")).unwrap();
    fs::write(sb.work().join("tree/big.bin"), pattern(3 << 20, 3)).unwrap();
    fs::write(sb.work().join("tree/small.txt"), b"small").unwrap();
    // Three seconds of upload; two lines and a half typed meanwhile.
    let keys: Vec<(u64, &[u8])> = vec![
        (400, b"put -r tree\r"),
        (700, b"pwd\r"),
        (100, b"echo one\r"),
        (100, b"echo tw"),
        (4000, b"o\r"),
        (600, b"quit\r"),
    ];
    let out = at_terminal(&sb, &server, &["--limit-rate", "1MiB"], keys);
    let screen = stdout(&out);
    let at = |what: &str| {
        screen
            .find(what)
            .unwrap_or_else(|| panic!("{what:?} on the screen: {screen}"))
    };
    let summary = at("put: 2 files");
    assert!(at("ONE") > summary && at("TWO") > at("ONE"), "{screen}");
    assert!(at(">>: pwd") > summary, "run after the command: {screen}");
    assert!(
        !screen[..summary].contains("echo one"),
        "nothing typed shows in the bar: {screen}"
    );
    let history = fs::read_to_string(sb.home().join(".local/state/ftp/history")).unwrap();
    assert!(
        history.contains("echo one") && history.contains("echo two"),
        "{history}"
    );
}

#[test]
fn tab_completes_server_paths_at_any_depth_and_local_ones_for_sync() {
    if !require("`script` (util-linux), for a pseudo-terminal", has_script()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir_all(sb.root().join("tree/subfolder")).unwrap();
    fs::write(sb.root().join("tree/subfolder/deep-file.txt"), b"deep").unwrap();
    fs::create_dir_all(sb.work().join("local-only/inner")).unwrap();
    fs::write(sb.work().join("local-only/inner/mine.txt"), b"mine").unwrap();
    // A line is typed once the prompt is back: keys that come while a
    // command runs are kept for after it, where a Tab completes nothing.
    let keys: Vec<(When, &[u8])> = vec![
        // Two Tabs: the folder (with its /), then the file inside it.
        (When::Shows(&[">>: "]), b"get tr\t"),
        (When::After(300), b"s\t"),
        (When::After(300), b"d\t\r"),
        // sync's server side after its ':', its local side from the disk.
        (When::Shows(&["saved ", ">>: "]), b"sync :tr\t"),
        (When::After(300), b" back\r"),
        (When::Shows(&[" removed", ">>: "]), b"sync local-o\t"),
        (When::After(300), b"i\t"),
        (When::After(300), b" :up\r"),
        (When::Shows(&[" removed", ">>: "]), b"quit\r"),
    ];
    let out = at_terminal_when(&sb, &server, &[], keys);
    let screen = stdout(&out);
    assert_eq!(
        fs::read(sb.work().join("deep-file.txt")).unwrap_or_default(),
        b"deep",
        "{screen}"
    );
    assert_eq!(
        fs::read(sb.work().join("back/subfolder/deep-file.txt")).unwrap_or_default(),
        b"deep",
        "{screen}"
    );
    assert_eq!(
        fs::read(sb.root().join("up/mine.txt")).unwrap_or_default(),
        b"mine",
        "{screen}"
    );
}
