//! A command's words: options split from operands.

use crate::wire::names::escape;

use super::ParseError;

/// A command's options and operands, split the POSIX way: options first,
/// `--` ends them, and an option after an operand is a mistake (most often
/// a flag of ftp-client itself, written after the command).
pub(super) struct Words<'a> {
    flags: Vec<char>,
    long: Vec<&'a str>,
    /// Long options that take a value, with it (`--failed-list FILE`).
    values: Vec<(&'a str, String)>,
    pub(super) operands: Vec<String>,
}

impl<'a> Words<'a> {
    pub(super) fn split(
        cmd: &str,
        args: &'a [String],
        short: &str,
        long: &[&'a str],
        usage: &str,
    ) -> Result<Words<'a>, ParseError> {
        Words::split_valued(cmd, args, short, long, &[], usage)
    }

    /// Like [`Words::split`], with long options in `valued` that take a
    /// value, as the next word or after `=`.
    pub(super) fn split_valued(
        cmd: &str,
        args: &'a [String],
        short: &str,
        long: &[&'a str],
        valued: &[&'a str],
        usage: &str,
    ) -> Result<Words<'a>, ParseError> {
        let mut words = Words {
            flags: Vec::new(),
            long: Vec::new(),
            values: Vec::new(),
            operands: Vec::new(),
        };
        let mut options_end = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if options_end || arg == "-" || !arg.starts_with('-') {
                words.operands.push(arg.clone());
                continue;
            }
            if arg == "--" {
                options_end = true;
                continue;
            }
            if !words.operands.is_empty() {
                return Err(ParseError(format!(
                    "{cmd}: option {} after a name; options go first ({usage}), options of \
                     ftp-client itself go before the command, and a name that starts with '-' \
                     goes after --",
                    escape(arg)
                )));
            }
            if let Some(name) = arg.strip_prefix("--") {
                let next = || args.next().cloned();
                words.take_long(name, next, (long, valued), (cmd, usage))?;
                continue;
            }
            for flag in arg[1..].chars() {
                if !short.contains(flag) {
                    return Err(ParseError(format!(
                        "{cmd}: unknown option -{}; usage: {usage}",
                        escape(&flag.to_string())
                    )));
                }
                words.flags.push(flag);
            }
        }
        Ok(words)
    }

    /// Takes the long option `--name` (or `--name=value`): a flag in
    /// `long`, or one in `valued` with its value, from `next` when not
    /// after `=`.
    fn take_long(
        &mut self,
        name: &str,
        next: impl FnOnce() -> Option<String>,
        (long, valued): (&[&'a str], &[&'a str]),
        (cmd, usage): (&str, &str),
    ) -> Result<(), ParseError> {
        let (key, inline) = match name.split_once('=') {
            Some((key, value)) => (key, Some(value.to_string())),
            None => (name, None),
        };
        if let Some(v) = valued.iter().find(|v| **v == key) {
            let Some(value) = inline.or_else(next) else {
                return Err(ParseError(format!(
                    "{cmd}: option --{v} needs a value; usage: {usage}"
                )));
            };
            self.values.push((v, value));
            return Ok(());
        }
        match long.iter().find(|l| **l == name) {
            Some(l) => {
                self.long.push(l);
                Ok(())
            }
            None => Err(ParseError(format!(
                "{cmd}: unknown option --{}; usage: {usage}",
                escape(name)
            ))),
        }
    }

    pub(super) fn has(&self, flag: char) -> bool {
        self.flags.contains(&flag)
    }

    pub(super) fn has_long(&self, name: &str) -> bool {
        self.long.contains(&name)
    }

    /// Every value given to a long option, in order.
    pub(super) fn values(&self, name: &str) -> Vec<String> {
        let given = self.values.iter().filter(|(n, _)| *n == name);
        given.map(|(_, v)| v.clone()).collect()
    }

    /// The value given to a long option last, if any.
    pub(super) fn value(&self, name: &str) -> Option<String> {
        let given = self.values.iter().rev().find(|(n, _)| *n == name);
        given.map(|(_, v)| v.clone())
    }
}
