//! `evlog checkpoint init | public-key | write`: the signing key and
//! checkpoints made by hand (the server makes them on its own; see README
//! "Tamper evidence").

use std::process::ExitCode;

use super::Context;
use crate::checkpoint::{self, Written, key};

/// Flags of `evlog checkpoint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Create the Ed25519 signing key (<storage>/checkpoint.key, mode 0600)
    /// and print its public key — keep that public key off this host.
    Init {
        /// Replace the key: the old one is kept aside as
        /// checkpoint.key.<unix time>; checkpoints made so far verify with
        /// the old public key, later ones with the new.
        #[arg(long)]
        rotate: bool,
    },
    /// Print the public key (64 hex digits) again.
    PublicKey,
    /// Sign a checkpoint of the chain head now and append it to
    /// <storage>/checkpoints/<today>.jsonl; prints it.
    Write {
        /// This node's name in the checkpoint (default: the host name).
        #[arg(long, env = "EVLOG_NODE", value_name = "NAME")]
        node: Option<String>,
    },
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let dir = &ctx.store.storage_path;
    match args.command {
        Sub::Init { rotate } => {
            let k = key::init(dir, rotate)?;
            eprintln!(
                "created {} (mode 0600). Its public key, to keep off this host (verify needs it):",
                dir.join(key::KEY_FILE).display()
            );
            println!("{}", key::public_hex(&k));
        }
        Sub::PublicKey => println!("{}", key::public_hex(&key::load(dir)?)),
        Sub::Write { node } => {
            let k = key::load(dir)?;
            let node = super::follow::node_name(node.as_deref());
            match checkpoint::write(dir, &k, &node, chrono::Utc::now(), false)? {
                Written::New(s) => {
                    eprintln!(
                        "checkpoint of seq {} written to {}",
                        s.checkpoint.seq,
                        s.at()
                    );
                    println!("{}", s.checkpoint.line());
                }
                Written::Empty => anyhow::bail!("the store holds no event yet: nothing to sign"),
                Written::Unchanged(_) => unreachable!("written whether or not the head moved"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
