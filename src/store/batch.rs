//! Group commit: rows queue up (coalesced per key, the latest wins) while a batch is
//! being written, and go out together in the next one. `write` waits for its batch to
//! commit; `write_behind` does not.

use super::{Store, StoreError, StoreResult};
use crate::sync::MutexExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, oneshot};

/// A row that can be upserted in batches.
pub trait BatchRow: Clone + Send + Sync + 'static {
    fn key(&self) -> &str;
    fn upsert(store: &Store, rows: &[Self]) -> impl Future<Output = StoreResult<()>> + Send;
}

const MAX_BATCH_ROWS: usize = 500;

struct Pending<R> {
    rows: HashMap<String, R>,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
}

impl<R> Default for Pending<R> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            waiters: Vec::new(),
        }
    }
}

pub struct BatchWriter<R> {
    pending: Arc<Mutex<Pending<R>>>,
    wake: Arc<Notify>,
}

impl<R> Clone for BatchWriter<R> {
    fn clone(&self) -> Self {
        Self {
            pending: self.pending.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<R: BatchRow> BatchWriter<R> {
    /// Starts the writer task (needs a tokio runtime).
    pub fn spawn(store: Store) -> Self {
        let writer = Self {
            pending: Arc::default(),
            wake: Arc::default(),
        };
        let (pending, wake) = (writer.pending.clone(), writer.wake.clone());
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                loop {
                    let batch = std::mem::take(&mut *pending.lock_unpoisoned());
                    if batch.rows.is_empty() && batch.waiters.is_empty() {
                        break;
                    }
                    let rows: Vec<R> = batch.rows.into_values().collect();
                    let mut result = Ok(());
                    for chunk in rows.chunks(MAX_BATCH_ROWS) {
                        if let Err(e) = write_chunk(&store, chunk).await {
                            result = Err(e);
                        }
                    }
                    for waiter in batch.waiters {
                        let _ = waiter.send(result.clone());
                    }
                }
            }
        });
        writer
    }

    fn enqueue(&self, rows: Vec<R>, waiter: Option<oneshot::Sender<Result<(), String>>>) {
        let mut pending = self.pending.lock_unpoisoned();
        for row in rows {
            pending.rows.insert(row.key().to_owned(), row);
        }
        pending.waiters.extend(waiter);
        drop(pending);
        self.wake.notify_one();
    }

    /// Stores `rows` and waits until they are committed.
    pub async fn write(&self, rows: Vec<R>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.enqueue(rows, Some(done));
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(StoreError::Unavailable("writer stopped".into())),
        }
    }

    /// Queues `rows` for the next batch without waiting.
    pub fn write_behind(&self, rows: Vec<R>) {
        if !rows.is_empty() {
            self.enqueue(rows, None);
        }
    }
}

/// One statement (or transaction) for the chunk; when it fails, row by row, so one bad
/// row (say, of an extension deleted a moment ago) does not sink the others.
async fn write_chunk<R: BatchRow>(store: &Store, chunk: &[R]) -> Result<(), String> {
    if R::upsert(store, chunk).await.is_ok() {
        return Ok(());
    }
    let mut result = Ok(());
    for row in chunk {
        if let Err(e) = R::upsert(store, std::slice::from_ref(row)).await {
            tracing::error!(row.key = %row.key(), error = %e, "row not stored");
            result = Err(e.to_string());
        }
    }
    result
}
