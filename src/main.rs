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
/// under the REGISTER benchmark). Its v2 line (the `v2` feature), not v3: with 100,000
/// bindings registered in a burst, v3 held 2,320 bytes of RSS per binding once settled
/// and v2 1,779 (scripts/bench/register memory stage, same machine and settings), and v3
/// was ~10 % faster only at the top of the REGISTER curve. The live data is ~1.2 KB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process. mimalloc asks for them on its segments,
/// and the kernel's khugepaged then fills every sparsely used 2 MiB range in the
/// background: after 100,000 registrations RSS kept climbing by ~800 KiB/s with the
/// server idle (126 MiB of AnonHugePages). With THP off it stays flat. `prctl` covers
/// hosts where THP is `always` as well as `madvise`.
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag on this
    // process; it touches no memory we own.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        eprintln!(
            "warning: could not disable transparent huge pages: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
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
    let runtime = switchboard::runtime::api()?;
    let store = cli.store;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let sip = switchboard::runtime::sip()?;
            switchboard::runtime::lower_current_thread();
            let served = runtime.block_on(app::serve(store, cli.serve, sip.handle().clone()));
            // Runtimes are dropped outside any async context.
            drop(sip);
            served
        }
        Command::Schema => {
            print!("{}", switchboard::api::graphql::sdl());
            Ok(())
        }
        Command::Migrate => runtime.block_on(async {
            let store = app::open_store(&store).await?;
            eprintln!("migrations applied ({})", store.backend_name());
            Ok(())
        }),
        Command::Pbx {
            command: PbxCommand::Create { name, domain },
        } => runtime.block_on(async {
            let store = app::open_store(&store).await?;
            let pbx = Bootstrap(&store)
                .create_pbx(&name, domain.as_deref())
                .await?;
            println!("{}", pbx.id);
            Ok(())
        }),
        Command::Apikey {
            command: ApikeyCommand::Create { pbx, scopes, test },
        } => {
            let scopes = match scopes {
                None => ScopeSet::all(),
                Some(list) => ScopeSet::parse_list(&list)
                    .map_err(|bad| anyhow::anyhow!("unknown scope {bad:?}"))
                    .context("--scopes")?,
            };
            runtime.block_on(async {
                let store = app::open_store(&store).await?;
                let key = Bootstrap(&store).create_api_key(&pbx, scopes, test).await?;
                println!("{key}");
                Ok(())
            })
        }
    }
}
