//! The WhatsApp channels the webhook has looked up, by `phone_number_id`, so a notification
//! costs no channel query. Every channel write in this process bumps
//! [`channels::changes`](crate::messaging::channels::changes), which empties the cache; a
//! 30 s age limit covers changes made outside it (another process on the same database,
//! an organization removed by retention).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::SqlitePool;

use crate::messaging::channels::{self, Channel};

/// How long an entry is trusted without a change seen in this process.
const MAX_AGE: Duration = Duration::from_secs(30);
/// Far more than any deployment's WhatsApp numbers; a bound, not a tuning knob.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct ChannelCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// The value of `channels::changes()` the entries were read under.
    epoch: u64,
    by_phone_number_id: HashMap<String, (Instant, Arc<Channel>)>,
}

impl ChannelCache {
    /// The channel for `phone_number_id`, from the cache or the database. Unknown ids are
    /// not remembered (anyone can post them; they must not grow the cache).
    pub async fn find(
        &self,
        pool: &SqlitePool,
        phone_number_id: &str,
    ) -> Result<Option<Arc<Channel>>, sqlx::Error> {
        // Read before the query: a change committed while it runs leaves a newer epoch,
        // so what this lookup stores is dropped at the next one.
        let epoch = channels::changes();
        if let Some(c) = self.cached(epoch, phone_number_id) {
            return Ok(Some(c));
        }
        let Some(found) = channels::find_whatsapp_by_phone_number_id(pool, phone_number_id).await?
        else {
            return Ok(None);
        };
        let found = Arc::new(found);
        if let Ok(mut e) = self.inner.lock()
            && e.epoch == epoch
        {
            if e.by_phone_number_id.len() >= MAX_ENTRIES {
                e.by_phone_number_id.clear();
            }
            e.by_phone_number_id
                .insert(phone_number_id.to_string(), (Instant::now(), found.clone()));
        }
        Ok(Some(found))
    }

    fn cached(&self, epoch: u64, phone_number_id: &str) -> Option<Arc<Channel>> {
        let mut e = self.inner.lock().ok()?;
        if epoch != e.epoch {
            // Only forward: a lookup that started before a change must not revive entries.
            if epoch > e.epoch {
                e.by_phone_number_id.clear();
                e.epoch = epoch;
            }
            return None;
        }
        match e.by_phone_number_id.get(phone_number_id) {
            Some((at, c)) if at.elapsed() < MAX_AGE => Some(c.clone()),
            Some(_) => {
                e.by_phone_number_id.remove(phone_number_id);
                None
            }
            None => None,
        }
    }
}
