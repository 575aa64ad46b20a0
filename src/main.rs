//! The `switchboard` command: `serve` (the default), `migrate`, `pbx create`,
//! `apikey create`, `schema`.

use anyhow::Context;
use clap::Parser;
use switchboard::app;
use switchboard::auth::ScopeSet;
use switchboard::config::{ApikeyCommand, Cli, Command, PbxCommand};
use switchboard::service::Bootstrap;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: the SIP path makes many small, short-lived
/// allocations across threads, where glibc spent a third of the CPU (measured with perf
/// under the REGISTER benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_env("SWITCHBOARD_LOG")
                .or_else(|_| EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => app::serve(cli.store, cli.serve).await,
        Command::Schema => {
            print!("{}", switchboard::api::graphql::sdl());
            Ok(())
        }
        Command::Migrate => {
            let store = app::open_store(&cli.store).await?;
            eprintln!("migrations applied ({})", store.backend_name());
            Ok(())
        }
        Command::Pbx {
            command: PbxCommand::Create { name, domain },
        } => {
            let store = app::open_store(&cli.store).await?;
            let pbx = Bootstrap(&store)
                .create_pbx(&name, domain.as_deref())
                .await?;
            println!("{}", pbx.id);
            Ok(())
        }
        Command::Apikey {
            command: ApikeyCommand::Create { pbx, scopes, test },
        } => {
            let scopes = match scopes {
                None => ScopeSet::all(),
                Some(list) => ScopeSet::parse_list(&list)
                    .map_err(|bad| anyhow::anyhow!("unknown scope {bad:?}"))
                    .context("--scopes")?,
            };
            let store = app::open_store(&cli.store).await?;
            let key = Bootstrap(&store).create_api_key(&pbx, scopes, test).await?;
            println!("{key}");
            Ok(())
        }
    }
}
