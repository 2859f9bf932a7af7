//! The upload check (`on-upload-check`): a command or a URL that sees an
//! upload's bytes before it takes its name, and may refuse it (a virus
//! scanner). It fails closed: a check that cannot run, errs or takes too
//! long refuses the upload as a "no" does.

use std::fs::File;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::run::{wait_within, Failure};
use super::{Event, Hook};
use crate::wire::message::{ErrorCode, ErrorReply};

/// Most bytes of a check's output (or answer) read for its reason.
const MAX_REASON: usize = 4096;

/// Most characters of a reason shown to the client.
const REASON_CHARS: usize = 200;

/// How a check ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The upload may take its name.
    Pass,
    /// The check said no, with its first line.
    Refused(String),
    /// The check did not answer (for the log); the upload is refused.
    Failed(String),
}

impl Verdict {
    /// The reply for an upload of `name` that the check did not pass.
    pub(crate) fn allows(self, name: &str) -> Result<(), ErrorReply> {
        let why = match self {
            Verdict::Pass => return Ok(()),
            Verdict::Refused(reason) => format!("the server's upload check refused it: {reason}"),
            // The detail is in the server's log: it may name its paths.
            Verdict::Failed(_) => "the server's upload check could not decide (see its log); \
                                   nothing was kept, try again later"
                .to_string(),
        };
        let name = crate::wire::names::escape(name);
        Err(ErrorReply::new(
            ErrorCode::Forbidden,
            format!("{name} not stored: {why}"),
        ))
    }
}

/// Runs `hook` on `contents` (the upload's bytes from the start), within
/// `timeout`.
pub(super) fn check(hook: &Hook, event: &Event, contents: File, timeout: Duration) -> Verdict {
    match hook {
        Hook::Command { argv, .. } => by_command(argv, event, contents, timeout),
        Hook::Url(url) => by_url(url, event, contents, timeout),
    }
}

/// The file on stdin, the event in `FTP_*` variables; exit 0 passes, and
/// the first line of stdout is the reason of a refusal.
fn by_command(argv: &[String], event: &Event, contents: File, timeout: Duration) -> Verdict {
    let Some((program, args)) = argv.split_first() else {
        return Verdict::Failed("no program named".into());
    };
    let spawned = Command::new(program)
        .args(args)
        .envs(event.environment())
        .stdin(Stdio::from(contents))
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return Verdict::Failed(Failure::Spawn(program.clone(), e).to_string()),
    };
    let mut output = Vec::new();
    let mut stdout = child.stdout.take();
    // Read as it comes, so that a chatty check never fills the pipe and
    // stalls; past the first bytes it is thrown away.
    if let Some(out) = &stdout {
        if rustix::io::ioctl_fionbio(out, true).is_err() {
            stdout = None;
        }
    }
    let mut drain = || {
        if let Some(out) = stdout.as_mut() {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                let room = MAX_REASON.saturating_sub(output.len());
                output.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    };
    let status = wait_within(&mut child, timeout, &mut drain);
    drain();
    match status {
        Ok(status) if status.success() => Verdict::Pass,
        Ok(status) => Verdict::Refused(first_line(&output).unwrap_or(format!("{status}"))),
        Err(failure) => Verdict::Failed(failure.to_string()),
    }
}

/// The file POSTed as the body, the event in the query; a 2xx passes, a
/// 4xx refuses with the first line of its body.
fn by_url(url: &str, event: &Event, contents: File, timeout: Duration) -> Verdict {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let query = event
        .environment()
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("FTP_").to_ascii_lowercase(), v));
    let answer = agent
        .post(url)
        .query_pairs(query)
        .header("content-type", "application/octet-stream")
        .send(contents);
    let mut response = match answer {
        Ok(response) => response,
        Err(e) => return Verdict::Failed(e.to_string()),
    };
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let reader = response.body_mut().as_reader();
    let _ = reader.take(MAX_REASON as u64).read_to_end(&mut body);
    match status {
        200..=299 => Verdict::Pass,
        400..=499 => Verdict::Refused(first_line(&body).unwrap_or(format!("HTTP {status}"))),
        _ => Verdict::Failed(Failure::Status(status).to_string()),
    }
}

/// The first line of `bytes` that says something, without control
/// characters, cut to a length a reply can carry.
fn first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(
        line.chars()
            .filter(|c| !c.is_control())
            .take(REASON_CHARS)
            .collect(),
    )
}

/// The check's input: the upload's bytes from the start.
pub(super) fn rewound(file: io::Result<File>) -> io::Result<File> {
    use std::io::Seek;
    let mut file = file?;
    file.rewind()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::hooks::EventKind;
    use std::io::Write;

    fn contents(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        rewound(Ok(file)).unwrap()
    }

    fn run(command: &str, bytes: &[u8]) -> Verdict {
        let hook = Hook::parse(command).unwrap();
        let event = Event::now(EventKind::Upload, &[], "f");
        check(&hook, &event, contents(bytes), Duration::from_secs(5))
    }

    #[test]
    fn a_command_sees_the_bytes_and_its_first_line_is_the_reason() {
        assert_eq!(run("grep -q clean", b"all clean"), Verdict::Pass);
        let said = run("sh -c 'echo; echo \"  EICAR found\x07\"; exit 1'", b"x");
        assert_eq!(said, Verdict::Refused("EICAR found".into()));
        assert_eq!(
            run("false", b"x"),
            Verdict::Refused("exit status: 1".into())
        );
    }

    #[test]
    fn a_check_that_cannot_run_or_hangs_fails_closed() {
        assert!(matches!(
            run("/nonexistent/scanner", b"x"),
            Verdict::Failed(_)
        ));
        let hook = Hook::parse("sleep 20").unwrap();
        let event = Event::now(EventKind::Upload, &[], "f");
        let got = check(&hook, &event, contents(b"x"), Duration::from_millis(200));
        assert!(
            matches!(got, Verdict::Failed(ref r) if r.contains("killed")),
            "{got:?}"
        );
    }
}
