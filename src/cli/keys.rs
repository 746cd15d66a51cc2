//! `detective keys`: create, list and revoke API keys in the store.
use clap::{Args, Subcommand};

use super::common::{open_store, runtime, StoreArgs};
use crate::detect::keys::{create_key, Scope};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key and print it (once; only its hash is stored).
    Create {
        /// Scopes: detect, reference:write, admin (repeat or comma-separate).
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A name to recognise the key by.
        #[arg(long, default_value = "unnamed")]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id; it stops working at once.
    Revoke { id: i64 },
}

pub fn run(args: &KeysArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        match &args.action {
            KeysAction::Create { scopes, name } => {
                let scopes = scopes
                    .iter()
                    .map(|s| s.parse::<Scope>().map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let (id, key) = create_key(store.as_ref(), name, &scopes).await?;
                eprintln!("key {id} created; it is shown only now:");
                println!("{key}");
            }
            KeysAction::List => {
                println!(
                    "{:>4}  {:<20} {:<10} {:<28} {:<20} revoked",
                    "id", "name", "prefix", "scopes", "created"
                );
                for k in store.list_keys().await? {
                    println!(
                        "{:>4}  {:<20} {:<10} {:<28} {:<20} {}",
                        k.id,
                        k.name,
                        k.prefix,
                        k.scopes.join(","),
                        k.created_at.format("%Y-%m-%d %H:%M:%S"),
                        k.revoked_at
                            .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                    );
                }
            }
            KeysAction::Revoke { id } => {
                anyhow::ensure!(store.revoke_key(*id).await?, "no active key with id {id}");
                eprintln!("key {id} revoked");
            }
        }
        Ok(())
    })
}
