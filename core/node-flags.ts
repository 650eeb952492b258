/**
 * The Node.js flags every gateway process runs with: `npm start`, the image's CMD and `npm run
 * cluster` pass them (a test keeps package.json and the Dockerfile equal to this list), and the
 * benchmarks start their replicas with them.
 *
 * `--max-semi-space-size=4`: V8 grows the young generation under allocation bursts (linking,
 * first sends) up to 128 MB and keeps it after they pass; that was most of what the first 50
 * sessions cost (bench:sessions: 4.3 MB per session at 50, 2.3 MB with the cap; 1.7 → 1.1 at 200;
 * 190 → 160 MB idle). bench:send showed no difference in the holder's CPU per send.
 */
export const GATEWAY_NODE_FLAGS = ['--max-semi-space-size=4']

/**
 * The environment every gateway process runs with, as the flags above: `npm start` sets it (unless
 * already set), the image has it as ENV, `npm run cluster` and bench:sessions' idle replica pass it
 * (the same test keeps package.json and the Dockerfile equal to it).
 *
 * `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates (V8's compiler and GC threads,
 * libuv's pool) an arena of its own, up to 8 per core; after start-up those arenas held some 10 MB
 * of which 7 MB free and not returned (malloc_stats of an idle replica). With two arenas an idle
 * `npm start` is 137.0, 138.0, 138.4 → 133.1, 135.1, 135.4 MB (3 runs each); bench:send showed no
 * difference in the holder's CPU per send (135, 120 µs with it; 135 without, same run).
 */
export const GATEWAY_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2' }
