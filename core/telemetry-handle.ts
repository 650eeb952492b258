/** Set by core/telemetry.ts when tracing runs, so the server can flush the last spans on shutdown. */
export const telemetryHandle: { shutdown: (() => Promise<void>) | undefined } = { shutdown: undefined }
