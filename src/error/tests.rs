//! How errors read to a user, and what they keep of their causes.

use super::*;
use std::error::Error as _;

#[test]
fn an_unreadable_file_keeps_its_os_error_and_is_local() {
    let denied = io::Error::from_raw_os_error(13);
    let e = Error::cannot_read("notes.txt", denied);
    assert_eq!(e.to_string(), "cannot read notes.txt: Permission denied");
    let source = e.source().and_then(|s| s.downcast_ref::<io::Error>());
    assert_eq!(source.map(io::Error::raw_os_error), Some(Some(13)));
    assert!(e.is_local());
    assert!(!Error::Closed.is_local());
}

#[test]
fn an_upload_cut_by_its_file_says_nothing_was_stored_and_why() {
    let not_stored = |cause: Option<Error>| Error::NotStored {
        file: "big.bin".into(),
        cause: cause.map(Box::new),
    };
    let (expected, got, what) = (10, 4, "file data");
    let shrank = not_stored(Some(Error::Truncated {
        what,
        expected,
        got,
    }));
    let said = "big.bin changed size while it was sent (connection closed in the middle of \
                the file data: got 4 of 10 bytes); nothing was stored";
    assert_eq!(shrank.to_string(), said);
    assert!(shrank.source().is_some());
    let eio = io::Error::from_raw_os_error(5);
    let unreadable = not_stored(Some(Error::cannot_read("big.bin", eio)));
    let said = "cannot read big.bin: Input/output error; nothing was stored";
    assert_eq!(unreadable.to_string(), said);
    assert!(
        !not_stored(None).is_local(),
        "the connection is out of step"
    );
}

#[test]
fn a_servers_message_is_shown_escaped() {
    let e = Error::Remote {
        code: crate::wire::reply::ErrorCode::NotFound,
        message: "no file a\u{202e}txt.exe\x1b[2J".into(),
    };
    assert_eq!(
        e.to_string(),
        "server refused (not found): no file a\\u{202e}txt.exe\\u{1b}[2J"
    );
}

#[test]
fn everything_a_peer_could_have_written_is_shown_escaped() {
    // serde quotes the reply it could not read.
    let bad = serde_json::from_str::<crate::wire::message::EntryKind>("\"\\u001b]0;pwned\\u0007\"")
        .map_err(|e| Error::Malformed(e.to_string()))
        .unwrap_err();
    let shown = bad.to_string();
    assert!(
        !shown.contains('\x1b') && !shown.contains('\x07'),
        "{shown:?}"
    );
    assert!(shown.contains("\\u{1b}]0;pwned\\u{7}"), "{shown}");
    let nested = Error::ConnectionLost {
        cause: Box::new(Error::io(
            "reading a\u{2066}b",
            io::Error::other("x\u{200b}y"),
        )),
    };
    assert_eq!(
        nested.to_string(),
        "connection lost (reading a\\u{2066}b: x\\u{200b}y); run the same command to resume",
        "escaped once, not twice"
    );
    let folder = Error::FolderLost {
        folder: "/t\x1b[2J".into(),
        cause: Box::new(Error::Closed),
    };
    assert!(folder.to_string().contains("/t\\u{1b}[2J"), "{folder}");
}

#[test]
fn os_errors_read_without_their_number() {
    let missing = io::Error::from_raw_os_error(libc::ENOENT);
    assert_eq!(reason(&missing), "No such file or directory");
    assert_eq!(
        Error::io("reading a.txt", missing).to_string(),
        "reading a.txt: No such file or directory"
    );
    let other = io::Error::other("the store said no (os error 5)?");
    assert_eq!(reason(&other), "the store said no (os error 5)?");
}

#[test]
fn a_tls_refusal_keeps_the_libraries_error() {
    let e = Error::Tls(rustls::Error::General("no TLS 1.3".into()));
    assert!(e.to_string().starts_with("TLS: "), "{e}");
    assert!(e.to_string().contains("no TLS 1.3"), "{e}");
    let source = e.source().and_then(|s| s.downcast_ref::<rustls::Error>());
    assert!(matches!(source, Some(rustls::Error::General(_))), "{e}");
}

#[test]
fn a_command_named_in_front_of_its_cause_keeps_what_the_cause_is() {
    let wrap = |cause| Error::Command {
        what: "put big.bin".into(),
        cause: Box::new(cause),
    };
    let interrupted = wrap(Error::Interrupted { what: "upload" });
    assert!(interrupted.is_interruption());
    assert!(interrupted
        .to_string()
        .starts_with("put big.bin: upload interrupted"));
    assert!(wrap(Error::Closed).is_disconnect());
    assert!(wrap(Error::Usage("no such file".into())).is_local());
    assert!(wrap(Error::Closed).source().is_some());
}

#[test]
fn a_wire_failure_becomes_the_error_of_the_same_name_and_reads_the_same() {
    let remote = || WireError::Remote {
        code: ErrorCode::NotFound,
        message: "no such file".into(),
    };
    let truncated = || WireError::Truncated {
        what: "frame",
        expected: 10,
        got: 4,
    };
    /// A wire failure, and whether an error is the variant of its name.
    type Case = (fn() -> WireError, fn(&Error) -> bool);
    let cases: [Case; 7] = [
        (
            || WireError::FrameTooLarge { len: 9, max: 8 },
            |e| matches!(e, Error::FrameTooLarge { len: 9, max: 8 }),
        ),
        (
            || WireError::NegativeLength(-1),
            |e| matches!(e, Error::NegativeLength(-1)),
        ),
        (truncated, |e| matches!(e, Error::Truncated { got: 4, .. })),
        (|| WireError::Closed, |e| matches!(e, Error::Closed)),
        (
            || WireError::Malformed("x".into()),
            |e| matches!(e, Error::Malformed(why) if why == "x"),
        ),
        (|| WireError::AuthFailed, |e| matches!(e, Error::AuthFailed)),
        (remote, |e| {
            matches!(
                e,
                Error::Remote {
                    code: ErrorCode::NotFound,
                    ..
                }
            )
        }),
    ];
    for (wire, is_same) in cases {
        let error = Error::from(wire());
        assert!(is_same(&error), "{error:?}");
        assert_eq!(error.to_string(), wire().to_string());
    }
    let io = Error::from(WireError::io(
        "sending a message",
        io::Error::from_raw_os_error(32),
    ));
    assert_eq!(io.to_string(), "sending a message: Broken pipe");
    assert!(io.is_disconnect());
    let refused = Error::from(ErrorReply::new(ErrorCode::AuthFailed, "wrong secret"));
    assert!(matches!(refused, Error::AuthFailed), "{refused:?}");
}
