//! Filters on folder transfers, with gitignore's rules: `--exclude`,
//! `--include`, `--exclude-from` and `.ftpignore` for `put -r`, `get -r`
//! and `sync`; what they leave out is never removed by `sync --delete`.

use std::fs;

use crate::support::*;

fn tree(sb: &Sandbox) {
    let t = sb.work().join("tree");
    fs::create_dir_all(t.join("build")).unwrap();
    fs::create_dir_all(t.join("sub")).unwrap();
    for (name, body) in [
        ("a.txt", "a"),
        ("b.log", "b"),
        ("keep.log", "keep"),
        ("build/x.o", "x"),
        ("sub/c.txt", "c"),
        ("sub/t.tmp", "t"),
        (".ftpignore", "# scratch files\n*.tmp\n"),
    ] {
        fs::write(t.join(name), body).unwrap();
    }
}

#[test]
fn put_r_and_get_r_leave_out_what_the_filters_name() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    tree(&sb);
    sb.local_file("skip-list", b"build/\n");
    let args = [
        "put",
        "-r",
        "--exclude-from",
        "skip-list",
        "--exclude",
        "*.log",
        "--include",
        "keep.log",
        "tree",
    ];
    let out = ClientRun::new(&sb, &server, &args).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let there = sb.root().join("tree");
    for sent in ["a.txt", "keep.log", "sub/c.txt", ".ftpignore"] {
        assert!(there.join(sent).is_file(), "{sent} was sent");
    }
    for left in ["b.log", "build", "sub/t.tmp"] {
        assert!(!there.join(left).exists(), "{left} was left out");
    }

    let out = ClientRun::new(
        &sb,
        &server,
        &["get", "-r", "--exclude", "sub/", "tree", "back"],
    )
    .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sb.work().join("back/a.txt").is_file());
    assert!(!sb.work().join("back/sub").exists());

    let out = ClientRun::new(
        &sb,
        &server,
        &["put", "-r", "--exclude-from", "nothing", "tree"],
    )
    .run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "cannot read nothing");
}

#[test]
fn sync_delete_never_removes_what_is_excluded() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    tree(&sb);
    let there = sb.root().join("tree");
    fs::create_dir_all(there.join("old")).unwrap();
    fs::write(there.join("extra.log"), b"server's own log").unwrap();
    fs::write(there.join("old/z.log"), b"kept inside a folder that goes").unwrap();
    fs::write(there.join("old/y.txt"), b"goes").unwrap();
    fs::write(there.join("stale.txt"), b"goes").unwrap();
    let args = ["sync", "--delete", "--exclude", "*.log", "tree", ":tree"];
    let out = ClientRun::new(&sb, &server, &args).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(there.join("extra.log")).unwrap(),
        b"server's own log"
    );
    assert!(there.join("old/z.log").is_file());
    assert!(!there.join("old/y.txt").exists() && !there.join("stale.txt").exists());
    assert!(!there.join("keep.log").exists() && !there.join("sub/t.tmp").exists());
    assert!(there.join("sub/c.txt").is_file());

    // Fetching: the local side's excluded files stay too.
    let copy = sb.work().join("copy");
    fs::create_dir_all(copy.join("mine")).unwrap();
    fs::write(copy.join("mine/notes.log"), b"local notes").unwrap();
    fs::write(copy.join("mine/other.txt"), b"goes").unwrap();
    let args = ["sync", "--delete", "--exclude", "*.log", ":tree", "copy"];
    let out = ClientRun::new(&sb, &server, &args).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(copy.join("mine/notes.log")).unwrap(),
        b"local notes"
    );
    assert!(!copy.join("mine/other.txt").exists());
    assert!(copy.join("sub/c.txt").is_file() && !copy.join("extra.log").exists());
}

#[test]
fn sync_itemizes_each_change_and_sums_up_bytes_time_and_direction() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let here = sb.work().join("docs");
    fs::create_dir_all(here.join("new-folder")).unwrap();
    fs::write(here.join("same.txt"), b"same").unwrap();
    fs::write(here.join("changed.txt"), b"changed here").unwrap();
    fs::write(here.join("new-folder/fresh.txt"), b"fresh").unwrap();
    let out = ClientRun::new(&sb, &server, &["sync", "docs", ":docs"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    fs::write(here.join("changed.txt"), b"changed again").unwrap();
    fs::remove_dir_all(here.join("new-folder")).unwrap();
    fs::create_dir(here.join("other")).unwrap();
    fs::write(here.join("other/o.txt"), b"o").unwrap();
    let args = ["sync", "-i", "--delete", "docs", ":docs"];
    let out = ClientRun::new(&sb, &server, &args).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "*deleting :docs/new-folder\n",
        "cd+ :docs/other\n",
        ">f~ :docs/changed.txt\n",
        ">f+ :docs/other/o.txt\n",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    assert!(!text.contains("same.txt"), "{text}");
    assert!(
        text.contains("sync docs to :docs: 2 files sent, 14 B sent in ")
            && text.contains("; 1 up to date; 1 removed"),
        "{text}"
    );
    // Fetching says so, with what it received.
    let out = ClientRun::new(&sb, &server, &["sync", "-i", ":docs", "back"]).run();
    let text = stdout(&out);
    assert!(text.contains("<f+ back/other/o.txt"), "{text}");
    assert!(
        text.contains("sync :docs to back: 3 files fetched, 18 B received in "),
        "{text}"
    );
}
