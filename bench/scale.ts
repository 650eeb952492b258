/**
 * bench:scale — bench:failover at the size of a large deployment: 10,000 companies on 5 replica
 * processes and one NATS server, with the production lease TTL (15 s). Each default can be
 * overridden with the same variables (BENCH_COMPANIES, BENCH_REPLICAS, BENCH_TTL_MS). Its last line
 * is failover's JSON: companies, replicas, cold_start_ms, renew_writes_per_s, sigkill_p99_ms,
 * ttl_ms, overlaps, rss_mb_per_replica, and the rest.
 */
process.env.BENCH_COMPANIES ??= '10000'
process.env.BENCH_REPLICAS ??= '5'
process.env.BENCH_TTL_MS ??= '15000'
process.env.BENCH_SETTLE_TIMEOUT_MS ??= '180000'
await import('./failover.ts')
