//! The run loop and the approval lifecycle end to end: agents, teams, every pause kind, the
//! gate's decisions, audit rows, exactly-once continues, continues from another process, the
//! recovery of runs whose continue never finished, the lifecycle's invariants over random
//! interleavings, processes killed mid-cycle, workers that continue decided runs, and streamed runs.
//! Store-dependent tests run on the memory store, SQLite and Postgres alike.

mod agent;
mod approval;
mod backend;
mod child;
mod crash;
mod examples;
mod hostile;
mod ledger;
mod policy;
mod process;
mod properties;
mod recovery;
mod schema;
mod streaming;
mod team;
mod tools;
mod worker;

/// Generates one `#[tokio::test]` per backend for each listed `async fn(Backend)`.
macro_rules! on_every_backend {
    ($($test:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(crate::backend::Backend::memory()).await;
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(crate::backend::Backend::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(backend) = crate::backend::Backend::postgres().await {
                        super::$test(backend).await;
                    }
                }
            )+
        }
    };
}
pub(crate) use on_every_backend;
