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
