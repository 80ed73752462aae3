//! Command-line parsing in the three dialects the real runtimes use.
//!
//! A driver that builds argv for one runtime can pass an option the runtime does not know, or put
//! a flag after the container id, and the real runtime rejects or misreads it in its own way. The
//! fake must do the same, or such bugs would only show against the real binaries:
//!
//! - runc (Go's `flag` package via urfave/cli): one or two dashes, `-name=value` or
//!   `-name value`, flags may follow the arguments (urfave reorders them) except for `exec`,
//!   `ps` and the global options, where parsing stops at the first argument; unknown flags are
//!   ``flag provided but not defined: -name``.
//! - crun (glibc argp): `--long[=value]`, clustered short options, parsing stops at the first
//!   positional argument, unknown options are ``unrecognized option '--name'``.
//! - youki (clap): options anywhere unless a trailing argument list has begun, unknown options
//!   are ``error: unexpected argument '--name' found`` with exit status 2.

use super::error::Failure;
use super::flavour::{Ctx, Flavour};

/// One option a command accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opt {
    pub long: &'static str,
    pub short: Option<char>,
    pub takes_value: bool,
}

/// A boolean option with only a long name.
pub(crate) const fn flag(long: &'static str) -> Opt {
    Opt { long, short: None, takes_value: false }
}

/// A boolean option with a long and a short name.
pub(crate) const fn flag_s(long: &'static str, short: char) -> Opt {
    Opt { long, short: Some(short), takes_value: false }
}

/// An option taking a value, long name only.
pub(crate) const fn val(long: &'static str) -> Opt {
    Opt { long, short: None, takes_value: true }
}

/// An option taking a value, with a short name.
pub(crate) const fn val_s(long: &'static str, short: char) -> Opt {
    Opt { long, short: Some(short), takes_value: true }
}

/// The grammar of one command (or of the global options when `name` is `None`).
#[derive(Debug)]
pub(crate) struct Grammar<'a> {
    pub name: Option<&'a str>,
    pub about: &'a str,
    pub opts: &'a [Opt],
    /// Positional argument names in kebab case, e.g. `container-id`.
    pub args: &'a [&'a str],
    pub min_args: usize,
    /// `None` when the last positional takes any number of values.
    pub max_args: Option<usize>,
    /// Set for commands whose trailing arguments are passed through. youki (clap's
    /// `trailing_var_arg`) takes everything verbatim once more than this many positionals were
    /// seen; runc then stops parsing at the first positional. crun always stops there.
    pub raw_after: Option<usize>,
}

impl<'a> Grammar<'a> {
    /// A command taking exactly the given positionals.
    pub(crate) fn new(name: &'a str, about: &'a str, opts: &'a [Opt], args: &'a [&'a str]) -> Self {
        Self { name: Some(name), about, opts, args, min_args: args.len(), max_args: Some(args.len()), raw_after: None }
    }
}

/// The parsed command line.
#[derive(Debug, Default)]
pub(crate) struct Matches {
    seen: Vec<(&'static str, Option<String>)>,
    pub positionals: Vec<String>,
    pub help: bool,
}

impl Matches {
    /// Whether a boolean option was given (and not set to false, runc's `--flag=false`).
    pub(crate) fn flag(&self, long: &str) -> bool {
        self.seen.iter().any(|(name, value)| *name == long && value.as_deref() != Some("false"))
    }

    /// The last value given for an option.
    pub(crate) fn value(&self, long: &str) -> Option<&str> {
        self.seen.iter().rev().find(|(name, _)| *name == long).and_then(|(_, value)| value.as_deref())
    }

    /// Every value given for a repeatable option, in order.
    pub(crate) fn values(&self, long: &str) -> Vec<&str> {
        self.seen.iter().filter(|(name, _)| *name == long).filter_map(|(_, value)| value.as_deref()).collect()
    }

    /// The first positional argument (the container id for most commands).
    pub(crate) fn first(&self) -> &str {
        self.positionals.first().map(String::as_str).unwrap_or("")
    }
}

/// Parses `argv` (everything after the command name) against `grammar`.
///
/// Returns `Ok` with `help` set when help was requested; argument counts are then not checked.
pub(crate) fn parse(ctx: &Ctx, grammar: &Grammar<'_>, argv: &[String]) -> Result<Matches, Failure> {
    let mut m = Matches::default();
    let mut raw = false;
    let mut i = 0;
    while i < argv.len() {
        let token = &argv[i];
        i += 1;
        if raw {
            m.positionals.push(token.clone());
            continue;
        }
        if token == "--" {
            raw = true;
            continue;
        }
        if token.len() > 1 && token.starts_with('-') {
            let mut next = || {
                let value = argv.get(i).cloned();
                if value.is_some() {
                    i += 1;
                }
                value
            };
            match ctx.flavour {
                Flavour::Runc => go_flag(grammar, token, &mut next, &mut m)?,
                Flavour::Crun => argp_option(grammar, token, &mut next, &mut m)?,
                Flavour::Youki => clap_option(grammar, token, &mut next, &mut m)?,
            }
            continue;
        }
        m.positionals.push(token.clone());
        raw = match ctx.flavour {
            // urfave/cli moves flags in front of the arguments, except for commands that pass
            // arguments through (`exec`, `ps`), where Go's flag parsing stops at the first one.
            Flavour::Runc => grammar.raw_after.is_some(),
            Flavour::Crun => true,
            Flavour::Youki => grammar.raw_after.is_some_and(|n| m.positionals.len() > n),
        };
    }
    if !m.help && grammar.name.is_some() {
        check_counts(ctx, grammar, &m)?;
    }
    Ok(m)
}

fn find<'o>(opts: &'o [Opt], long: Option<&str>, short: Option<char>) -> Option<&'o Opt> {
    opts.iter().find(|opt| long.is_some_and(|l| opt.long == l) || short.is_some_and(|s| opt.short == Some(s)))
}

fn go_flag(
    grammar: &Grammar<'_>,
    token: &str,
    next: &mut dyn FnMut() -> Option<String>,
    m: &mut Matches,
) -> Result<(), Failure> {
    let body = token.strip_prefix("--").unwrap_or_else(|| &token[1..]).to_string();
    if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
        return Err(Failure::runtime(format!("bad flag syntax: {token}")));
    }
    let (name, inline) = match body.split_once('=') {
        Some((name, value)) => (name.to_string(), Some(value.to_string())),
        None => (body, None),
    };
    if name == "help" || name == "h" {
        m.help = true;
        return Ok(());
    }
    let mut chars = name.chars();
    let short = match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    };
    let Some(opt) = find(grammar.opts, Some(&name), short) else {
        return Err(Failure::runtime(format!("flag provided but not defined: -{name}")));
    };
    if opt.takes_value {
        let value = inline.or_else(next).ok_or_else(|| Failure::runtime(format!("flag needs an argument: -{name}")))?;
        m.seen.push((opt.long, Some(value)));
    } else {
        let value = match inline.as_deref() {
            None => "true",
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => "true",
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => "false",
            Some(other) => {
                return Err(Failure::runtime(format!("invalid boolean value \"{other}\" for -{name}: parse error")));
            }
        };
        m.seen.push((opt.long, Some(value.to_string())));
    }
    Ok(())
}

fn argp_error(message: String) -> Failure {
    Failure::usage(format!("crun: {message}\nTry `crun --help' or `crun --usage' for more information."), 1)
}

fn argp_option(
    grammar: &Grammar<'_>,
    token: &str,
    next: &mut dyn FnMut() -> Option<String>,
    m: &mut Matches,
) -> Result<(), Failure> {
    if let Some(body) = token.strip_prefix("--") {
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        if name == "help" {
            m.help = true;
            return Ok(());
        }
        let Some(opt) = find(grammar.opts, Some(name), None) else {
            return Err(argp_error(format!("unrecognized option '--{name}'")));
        };
        if opt.takes_value {
            let value =
                inline.or_else(next).ok_or_else(|| argp_error(format!("option '--{name}' requires an argument")))?;
            m.seen.push((opt.long, Some(value)));
        } else if inline.is_some() {
            return Err(argp_error(format!("option '--{name}' doesn't allow an argument")));
        } else {
            m.seen.push((opt.long, None));
        }
        return Ok(());
    }
    let cluster: Vec<char> = token[1..].chars().collect();
    for (at, c) in cluster.iter().copied().enumerate() {
        // argp's help is `-?`; `-h` is accepted too since no crun command uses it.
        if c == '?' || (c == 'h' && find(grammar.opts, None, Some('h')).is_none()) {
            m.help = true;
            continue;
        }
        let Some(opt) = find(grammar.opts, None, Some(c)) else {
            return Err(argp_error(format!("invalid option -- '{c}'")));
        };
        if opt.takes_value {
            let rest: String = cluster[at + 1..].iter().collect();
            let value = if rest.is_empty() { next() } else { Some(rest) };
            let value = value.ok_or_else(|| argp_error(format!("option requires an argument -- '{c}'")))?;
            m.seen.push((opt.long, Some(value)));
            return Ok(());
        }
        m.seen.push((opt.long, None));
    }
    Ok(())
}

/// Formats a clap-style error for youki, exit status 2.
pub(crate) fn clap_error(grammar: &Grammar<'_>, message: &str) -> Failure {
    Failure::usage(format!("error: {message}\n\n{}\n\nFor more information, try '--help'.", youki_usage(grammar)), 2)
}

fn youki_usage(grammar: &Grammar<'_>) -> String {
    let mut usage = String::from("Usage: youki");
    match grammar.name {
        Some(name) => {
            usage.push(' ');
            usage.push_str(name);
            if !grammar.opts.is_empty() {
                usage.push_str(" [OPTIONS]");
            }
            for (index, arg) in grammar.args.iter().enumerate() {
                let upper = screaming(arg);
                let variadic = grammar.max_args.is_none() && index + 1 == grammar.args.len();
                let dots = if variadic { "..." } else { "" };
                if index < grammar.min_args {
                    usage.push_str(&format!(" <{upper}>{dots}"));
                } else {
                    usage.push_str(&format!(" [{upper}]{dots}"));
                }
            }
        }
        None => usage.push_str(" [OPTIONS] <COMMAND>"),
    }
    usage
}

fn screaming(kebab: &str) -> String {
    kebab.to_ascii_uppercase().replace('-', "_")
}

fn clap_option(
    grammar: &Grammar<'_>,
    token: &str,
    next: &mut dyn FnMut() -> Option<String>,
    m: &mut Matches,
) -> Result<(), Failure> {
    if let Some(body) = token.strip_prefix("--") {
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        if name == "help" {
            m.help = true;
            return Ok(());
        }
        let Some(opt) = find(grammar.opts, Some(name), None) else {
            return Err(clap_error(grammar, &format!("unexpected argument '--{name}' found")));
        };
        if opt.takes_value {
            let value = inline.or_else(next).ok_or_else(|| {
                clap_error(
                    grammar,
                    &format!("a value is required for '--{name} <{}>' but none was supplied", screaming(name)),
                )
            })?;
            m.seen.push((opt.long, Some(value)));
        } else if let Some(value) = inline {
            return Err(clap_error(
                grammar,
                &format!("unexpected value '{value}' for '--{name}' found; no more were expected"),
            ));
        } else {
            m.seen.push((opt.long, None));
        }
        return Ok(());
    }
    let cluster: Vec<char> = token[1..].chars().collect();
    for (at, c) in cluster.iter().copied().enumerate() {
        if c == 'h' {
            m.help = true;
            continue;
        }
        let Some(opt) = find(grammar.opts, None, Some(c)) else {
            return Err(clap_error(grammar, &format!("unexpected argument '-{c}' found")));
        };
        if opt.takes_value {
            let rest: String = cluster[at + 1..].iter().collect::<String>().trim_start_matches('=').to_string();
            let value = if rest.is_empty() { next() } else { Some(rest) };
            let value = value.ok_or_else(|| {
                clap_error(
                    grammar,
                    &format!(
                        "a value is required for '--{} <{}>' but none was supplied",
                        opt.long,
                        screaming(opt.long)
                    ),
                )
            })?;
            m.seen.push((opt.long, Some(value)));
            return Ok(());
        }
        m.seen.push((opt.long, None));
    }
    Ok(())
}

fn check_counts(ctx: &Ctx, grammar: &Grammar<'_>, m: &Matches) -> Result<(), Failure> {
    let count = m.positionals.len();
    let too_few = count < grammar.min_args;
    let too_many = grammar.max_args.is_some_and(|max| count > max);
    if !too_few && !too_many {
        return Ok(());
    }
    let name = grammar.name.unwrap_or_default();
    match ctx.flavour {
        Flavour::Runc => {
            let message = match grammar.max_args {
                Some(max) if max == grammar.min_args => {
                    format!("{}: \"{name}\" requires exactly {max} argument(s)", ctx.program)
                }
                Some(max) if too_many => format!("{}: \"{name}\" requires a maximum of {max} argument(s)", ctx.program),
                _ => format!("{}: \"{name}\" requires a minimum of {} argument(s)", ctx.program, grammar.min_args),
            };
            Err(Failure::runtime(message))
        }
        Flavour::Crun => {
            let message = match grammar.max_args {
                Some(max) if too_many => format!("`{name}` requires a maximum of {max} arguments"),
                _ => format!("`{name}` requires a minimum of {} arguments", grammar.min_args),
            };
            Err(Failure::runtime(message))
        }
        Flavour::Youki => {
            if too_few {
                let missing: Vec<String> =
                    grammar.args[count..grammar.min_args].iter().map(|arg| format!("  <{}>", screaming(arg))).collect();
                Err(clap_error(
                    grammar,
                    &format!("the following required arguments were not provided:\n{}", missing.join("\n")),
                ))
            } else {
                let extra = &m.positionals[grammar.max_args.unwrap_or_default()];
                Err(clap_error(grammar, &format!("unexpected argument '{extra}' found")))
            }
        }
    }
}

/// The short help a command prints for `--help`.
pub(crate) fn help_text(ctx: &Ctx, grammar: &Grammar<'_>) -> String {
    let name = grammar.name.unwrap_or_default();
    let mut out = String::new();
    match ctx.flavour {
        Flavour::Runc => {
            let args: Vec<String> = grammar.args.iter().map(|a| format!("<{a}>")).collect();
            out.push_str(&format!(
                "NAME:\n   runc {name} - {}\n\nUSAGE:\n   runc {name} [command options] {}\n",
                grammar.about,
                args.join(" ")
            ));
            if !grammar.opts.is_empty() {
                out.push_str("\nOPTIONS:\n");
                for opt in grammar.opts {
                    out.push_str(&format!("   {}\n", describe(opt, "--", "-", ", ")));
                }
            }
        }
        Flavour::Crun => {
            let args: Vec<String> = grammar.args.iter().map(|a| a.to_uppercase()).collect();
            out.push_str(&format!("Usage: crun [OPTION...] {name} {}\n{}\n\n", args.join(" "), grammar.about));
            for opt in grammar.opts {
                out.push_str(&format!("  {}\n", describe(opt, "--", "-", ", ")));
            }
            out.push_str("  -?, --help                 Give this help list\n");
        }
        Flavour::Youki => {
            out.push_str(&format!("{}\n\n{}\n\nOptions:\n", grammar.about, youki_usage(grammar)));
            for opt in grammar.opts {
                out.push_str(&format!("  {}\n", describe(opt, "--", "-", ", ")));
            }
            out.push_str("  -h, --help  Print help\n");
        }
    }
    out
}

fn describe(opt: &Opt, long: &str, short: &str, sep: &str) -> String {
    let value = if opt.takes_value { " value" } else { "" };
    match opt.short {
        Some(c) => format!("{long}{}{value}{sep}{short}{c}{value}", opt.long),
        None => format!("{long}{}{value}", opt.long),
    }
}

/// Parses a command; prints its help and returns `None` when help was requested.
pub(crate) fn parse_command(ctx: &Ctx, grammar: &Grammar<'_>, argv: &[String]) -> Result<Option<Matches>, Failure> {
    let m = parse(ctx, grammar, argv)?;
    if m.help {
        print!("{}", help_text(ctx, grammar));
        return Ok(None);
    }
    Ok(Some(m))
}
