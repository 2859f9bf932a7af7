//! The depth and length limits of a path hold whatever the order of the
//! operations that make names: `mv` cannot stack trees deeper, `cd` plus a
//! relative name cannot pass the length, and `rm -r` says why it stopped.

use std::fs;

use crate::support::*;
use serde_json::{json, Value};

fn ask(raw: &mut Raw, request: Value) -> Value {
    raw.send_json(&request);
    raw.reply().expect("every request is answered")
}

/// How many folders deep the tree below `dir` goes.
fn depth_of(dir: &std::path::Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| 1 + depth_of(&e.path()))
        .max()
        .unwrap_or(0)
}

#[test]
fn mv_cannot_build_a_tree_deeper_than_the_limit() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    assert_eq!(
        ask(&mut raw, json!({"cmd":"mkdir","path":"t"}))["status"],
        "ok"
    );
    // Each round puts the tree one folder deeper: n/t, renamed to t.
    let mut refused = None;
    for round in 0..40 {
        assert_eq!(
            ask(&mut raw, json!({"cmd":"mkdir","path":"n"}))["status"],
            "ok"
        );
        let moved = ask(&mut raw, json!({"cmd":"mv","from":"t","to":"n/t"}));
        if moved["status"] != "ok" {
            assert_eq!(moved["code"], "bad_name", "{moved}");
            assert!(
                moved["message"]
                    .as_str()
                    .unwrap()
                    .contains("deeper than 32"),
                "{moved}"
            );
            refused = Some(round);
            break;
        }
        assert_eq!(
            ask(&mut raw, json!({"cmd":"mv","from":"n","to":"t"}))["status"],
            "ok"
        );
    }
    // t is 1 level, and each round adds one: the 32nd round would make 33.
    assert_eq!(refused, Some(31));
    assert_eq!(depth_of(&sb.root()), 32);
    // What the limits allow, rm -r removes whole.
    let removed = ask(
        &mut raw,
        json!({"cmd":"rm","filename":"t","recursive":true}),
    );
    assert_eq!(removed["status"], "ok", "{removed}");
    assert_eq!(removed["entries"], 32);
}

#[test]
fn a_relative_name_below_a_deep_folder_cannot_pass_the_length_limit() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    // 16 folders of 250 bytes: a 4,016-byte path.
    let parts: Vec<String> = (0..16).map(|i| format!("{i:0>250}")).collect();
    let deep = parts.join("/");
    assert_eq!(
        ask(&mut raw, json!({"cmd":"mkdir","path":deep}))["status"],
        "ok"
    );
    assert_eq!(
        ask(&mut raw, json!({"cmd":"cd","path":deep}))["status"],
        "ok"
    );
    let long = "x".repeat(200);
    let made = ask(&mut raw, json!({"cmd":"mkdir","path":long}));
    assert_eq!(made["code"], "bad_name", "{made}");
    let request = json!({"cmd":"put","filename":long,"filesize":1,"ack":true});
    assert_eq!(ask(&mut raw, request)["code"], "bad_name");
    let moved = ask(
        &mut raw,
        json!({"cmd":"mv","from":format!("/{}", parts[0]),"to":long}),
    );
    assert_eq!(moved["code"], "bad_name", "{moved}");
    // What fits, a reconnecting client can name again from the home.
    assert_eq!(
        ask(&mut raw, json!({"cmd":"mkdir","path":"y".repeat(70)}))["status"],
        "ok"
    );
    let mut again = Raw::login(server.addr, SECRET.as_bytes());
    let back = format!("/{deep}/{}", "y".repeat(70));
    assert_eq!(
        ask(&mut again, json!({"cmd":"cd","path":back}))["status"],
        "ok"
    );
}

#[test]
fn rm_r_of_a_tree_deeper_than_it_goes_says_so() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    // Made on the server's machine: the protocol cannot make it.
    let mut deep = sb.root().join("planted");
    for _ in 0..70 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(sb.root().join("planted/f"), b"x").unwrap();
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    let removed = ask(
        &mut raw,
        json!({"cmd":"rm","filename":"planted","recursive":true}),
    );
    assert_eq!(removed["code"], "forbidden", "{removed}");
    let message = removed["message"].as_str().unwrap();
    assert!(message.contains("deeper than a removal goes"), "{message}");
    assert!(!message.contains("upload"), "{message}");
    assert!(
        !sb.root().join("planted/f").exists(),
        "what it reached went"
    );
}
