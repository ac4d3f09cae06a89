//! Keeping SQLite's query planner informed. Without statistics (`sqlite_stat1`) the planner
//! guesses, and on a large organization a guess can scan every call where an index lookup
//! would do (the API benchmark found one such plan). `PRAGMA optimize` gathers statistics
//! only for tables whose size changed enough to matter, with a bounded amount of work, so it
//! is cheap to run at start and every few hours, as SQLite's documentation recommends for
//! long-lived connections.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::watch;

/// How often statistics are refreshed while the server runs.
const EVERY: Duration = Duration::from_secs(3 * 3600);

/// At start: check every table (`0x10000`), not only those this connection has queried,
/// and analyse (`0x02`) the ones that need it.
pub async fn at_start(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // Samples about this many rows per index instead of reading whole tables, so a
    // multi-gigabyte database starts in milliseconds; the estimates are close enough to
    // choose indexes. The limit is per connection, hence one connection for both.
    sqlx::query("PRAGMA analysis_limit=1000")
        .execute(&mut *conn)
        .await?;
    sqlx::query("PRAGMA optimize=0x10002")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Refreshes statistics every few hours until `stop`.
pub fn spawn(pool: SqlitePool, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            if let Err(e) = at_start(&pool).await {
                tracing::warn!(error = %e, "refreshing the query planner's statistics failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn statistics_are_gathered_for_a_grown_table() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let pool = crate::store::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER, b TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("CREATE INDEX t_a ON t (a)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000)
             INSERT INTO t SELECT x % 50, 'v' || x FROM n",
        )
        .execute(&pool)
        .await
        .unwrap();
        let before: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(before, 0, "no statistics before");
        at_start(&pool).await.unwrap();
        let stat: String = sqlx::query_scalar("SELECT stat FROM sqlite_stat1 WHERE idx = 't_a'")
            .fetch_one(&pool)
            .await
            .unwrap();
        // About 3,000 rows (estimated from a sample), 50 values of `a`: about 60 rows each.
        let numbers: Vec<f64> = stat
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert!((2000.0..=4000.0).contains(&numbers[0]), "{stat}");
        assert!((40.0..=80.0).contains(&numbers[1]), "{stat}");
    }
}
