/**
 * OpenTelemetry, loaded before the app (`node --import ./core/telemetry.ts plugins/server.ts`), so the
 * instrumentations see Fastify and pg as they load. Configured only by the standard OTEL_*
 * variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, …); without an exporter set, it
 * starts nothing and tracing stays off, and the SDK is not even loaded (it is ~50 MB of a process).
 */
import { telemetryHandle } from './telemetry-handle.ts'

const env = process.env
const exporterWanted = env.OTEL_TRACES_EXPORTER !== undefined
  ? env.OTEL_TRACES_EXPORTER !== 'none'
  : Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)

if (exporterWanted && env.OTEL_SDK_DISABLED !== 'true') {
  env.OTEL_SERVICE_NAME ??= 'wa-gateway'
  // Only traces: the gateway's metrics are Prometheus (/metrics), its logs pino.
  env.OTEL_METRICS_EXPORTER ??= 'none'
  env.OTEL_LOGS_EXPORTER ??= 'none'
  const [{ NodeSDK }, { gatewayInstrumentations }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('./instrumentations.ts')
  ])
  const sdk = new NodeSDK({ instrumentations: gatewayInstrumentations() })
  sdk.start()
  telemetryHandle.shutdown = () => sdk.shutdown()
}
