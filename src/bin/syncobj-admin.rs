//! `syncobj-admin`: administer a running node over its TCP port, as PySyncObj's
//! `syncobj_admin` does.
//!
//! ```text
//! syncobj-admin --conn HOST:PORT [--password P] [--timeout SECS] status [--json]
//! syncobj-admin --conn HOST:PORT [--password P] add HOST:PORT
//! syncobj-admin --conn HOST:PORT [--password P] remove HOST:PORT
//! syncobj-admin --conn HOST:PORT [--password P] set-version N
//! syncobj-admin --conn HOST:PORT [--password P] transfer [HOST:PORT]
//! ```
//!
//! PySyncObj's spellings work too: `-conn`, `-pass`, `-status`, `-add`, `-remove`,
//! `-set_version`. `status` prints the node's status as sorted `key: value` lines (or JSON);
//! a command prints `SUCCESS ADD host:port` or `FAIL ADD host:port: reason`. Exit codes: 0
//! success, 1 the node refused or the command failed, 2 unreachable, timed out, refused
//! connection or bad arguments. See `docs/operations.md`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use syncobj_core::status::Status;
use syncobj_net::admin::{AdminClient, AdminReply, AdminRequest};

/// Administer a syncobj node over its TCP port.
#[derive(Debug, Parser)]
#[command(name = "syncobj-admin", version)]
struct Args {
    /// The node to administer, `host:port` (its address as the cluster knows it, or any
    /// address it listens on).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    conn: Option<String>,
    /// The cluster's password, if it has one (PySyncObj `-pass`). Without one, a node admits
    /// administrators from loopback only, unless it allows more (`admin_from_anywhere`).
    #[arg(long, global = true)]
    password: Option<String>,
    /// How long to wait in all for the reply, in seconds.
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECS")]
    timeout: f64,
    /// Print the status as JSON instead of `key: value` lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the node's status.
    Status,
    /// Add the node at HOST:PORT to the cluster as a voter.
    Add {
        /// The new node's address.
        #[arg(value_name = "HOST:PORT")]
        address: String,
    },
    /// Remove the member at HOST:PORT from the cluster.
    Remove {
        /// The member's address.
        #[arg(value_name = "HOST:PORT")]
        address: String,
    },
    /// Enable code version N on every node.
    SetVersion {
        /// The version.
        version: u32,
    },
    /// Hand the leadership over to HOST:PORT, or to the most up-to-date voter.
    Transfer {
        /// The voter to lead.
        #[arg(value_name = "HOST:PORT")]
        address: Option<String>,
    },
}

/// The exit code of a command the node refused or that failed.
const EXIT_FAILED: u8 = 1;
/// The exit code of an unreachable node, a timeout, a refused connection or bad arguments.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args = match Args::try_parse_from(normalize(std::env::args())) {
        Ok(args) => args,
        // Usage errors exit 2, `--help` and `--version` 0.
        Err(error) => error.exit(),
    };
    let Some(conn) = args.conn.as_deref() else {
        eprintln!("syncobj-admin: --conn HOST:PORT is required");
        return ExitCode::from(EXIT_ERROR);
    };
    let timeout = match Duration::try_from_secs_f64(args.timeout) {
        Ok(timeout) if !timeout.is_zero() => timeout,
        _ => {
            eprintln!("syncobj-admin: --timeout must be a positive number of seconds");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let request = match args.command {
        Command::Status => AdminRequest::Status,
        Command::Add { address } => AdminRequest::Add(address),
        Command::Remove { address } => AdminRequest::Remove(address),
        Command::SetVersion { version } => AdminRequest::SetVersion(version),
        Command::Transfer { address } => AdminRequest::Transfer(address),
    };
    let reply = AdminClient::new(conn, args.password.as_deref(), timeout)
        .and_then(|client| client.request(&request));
    match reply {
        Ok(reply) => show(&request, reply, args.json),
        Err(error) => {
            eprintln!("syncobj-admin: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Prints the reply to `request` and returns the exit code it means.
fn show(request: &AdminRequest, reply: AdminReply, json: bool) -> ExitCode {
    match (request, reply) {
        (AdminRequest::Status, AdminReply::Status(bytes)) => {
            let status: Status = match rmp_serde::from_slice(&bytes) {
                Ok(status) => status,
                Err(error) => {
                    eprintln!("syncobj-admin: undecodable status (another version?): {error}");
                    return ExitCode::from(EXIT_ERROR);
                }
            };
            if json {
                match serde_json::to_string_pretty(&status) {
                    Ok(text) => println!("{text}"),
                    Err(error) => {
                        eprintln!("syncobj-admin: cannot write JSON: {error}");
                        return ExitCode::from(EXIT_ERROR);
                    }
                }
            } else {
                println!("{status}");
            }
            ExitCode::SUCCESS
        }
        (_, AdminReply::Failed(reason)) => {
            println!("FAIL {}: {reason}", request.describe());
            ExitCode::from(EXIT_FAILED)
        }
        (AdminRequest::Status, AdminReply::Done) | (_, AdminReply::Status(_)) => {
            eprintln!("syncobj-admin: the node's reply does not fit the request");
            ExitCode::from(EXIT_ERROR)
        }
        (_, AdminReply::Done) => {
            println!("SUCCESS {}", request.describe());
            ExitCode::SUCCESS
        }
    }
}

/// Rewrites PySyncObj's single-dash spellings into this tool's: `-conn` → `--conn`, `-pass`
/// → `--password`, `-status` → `status`, `-add` → `add`, `-remove` → `remove`,
/// `-set_version` → `set-version`. Other arguments pass unchanged.
fn normalize(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|arg| {
        match arg.as_str() {
            "-conn" => "--conn",
            "-pass" => "--password",
            "-status" => "status",
            "-add" => "add",
            "-remove" => "remove",
            "-set_version" => "set-version",
            "-transfer" => "transfer",
            other => other,
        }
        .to_owned()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let argv = ["syncobj-admin"]
            .iter()
            .chain(args)
            .map(|s| (*s).to_owned());
        Args::try_parse_from(normalize(argv))
    }

    #[test]
    fn pysyncobj_spellings_parse_as_the_long_ones() {
        let args = parse(&["-conn", "a:1", "-pass", "p", "-set_version", "3"]).expect("parses");
        assert_eq!(args.conn.as_deref(), Some("a:1"));
        assert_eq!(args.password.as_deref(), Some("p"));
        assert!(matches!(args.command, Command::SetVersion { version: 3 }));
        let args = parse(&["-status", "-conn", "a:1"]).expect("options after the command");
        assert!(matches!(args.command, Command::Status));
        let args = parse(&["-conn", "a:1", "-remove", "b:2"]).expect("parses");
        assert!(matches!(args.command, Command::Remove { address } if address == "b:2"));
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["--conn", "a:1"][..],
            &["--conn", "a:1", "set-version", "x"],
            &["--conn", "a:1", "add"],
            &["--conn", "a:1", "frobnicate"],
        ] {
            let error = parse(args).expect_err("refused");
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }
}
