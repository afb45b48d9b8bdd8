// Drives a triage daemon with the real OpenTelemetry JavaScript SDK, as a Node service would.
// Usage: node export.mjs TRANSPORT ENDPOINT RUN_ID SPANS
//   TRANSPORT: proto (OTLP/HTTP protobuf), json (OTLP/HTTP JSON) or grpc; ENDPOINT: http://host:port.
// Headers, compression and certificates come from the standard OTEL_EXPORTER_OTLP_* variables.
// Prints one JSON line with the ids the Python test checks against the stored rows.
import { diag, DiagConsoleLogger, DiagLogLevel, trace, context, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { LoggerProvider, BatchLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';

const [transport, endpoint, runId, spanCount] = process.argv.slice(2);
diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN); // export failures reach stderr

const modules = {
  proto: ['exporter-trace-otlp-proto', 'exporter-logs-otlp-proto', 'exporter-metrics-otlp-proto'],
  json: ['exporter-trace-otlp-http', 'exporter-logs-otlp-http', 'exporter-metrics-otlp-http'],
  grpc: ['exporter-trace-otlp-grpc', 'exporter-logs-otlp-grpc', 'exporter-metrics-otlp-grpc'],
}[transport];
const [{ OTLPTraceExporter }, { OTLPLogExporter }, { OTLPMetricExporter }] = await Promise.all(
  modules.map((m) => import(`@opentelemetry/${m}`)));
const url = (path) => (transport === 'grpc' ? endpoint : `${endpoint}${path}`);

const resource = resourceFromAttributes({ 'service.name': `js-${transport}`, 'cicd.pipeline.run.id': runId });
const tracerProvider = new BasicTracerProvider({
  resource,
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: url('/v1/traces') }),
    { maxQueueSize: 65536, maxExportBatchSize: 512, scheduledDelayMillis: 200 })],
});
const loggerProvider = new LoggerProvider({
  resource,
  processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: url("/v1/logs") }) })],
});
const meterProvider = new MeterProvider({
  resource,
  readers: [new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url: url('/v1/metrics') }), exportIntervalMillis: 600000 })],
});

const tracer = tracerProvider.getTracer('tests.js', '1.2.3');
const attrs = { s: 'text', i: 7, f: 2.5, b: true, ls: ['a', 'b'], li: [1, 2], lf: [0.5], lb: [false] };
const root = tracer.startSpan('js parent', { kind: SpanKind.SERVER, attributes: attrs });
const rootCtx = trace.setSpan(context.active(), root);
const child = tracer.startSpan('js child', { kind: SpanKind.CLIENT }, rootCtx);
child.addEvent('retry', { attempt: 2 });
child.recordException(new Error('boom'));
child.setStatus({ code: SpanStatusCode.ERROR, message: 'it broke' });
child.end();
for (let i = 2; i < Number(spanCount); i++) {
  tracer.startSpan(`js span ${i}`, { attributes: { n: i } }, rootCtx).end();
}
loggerProvider.getLogger('tests.js.logs').emit({
  severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', body: 'payment declined for order-1',
  attributes: { 'order.id': 'order-1', retries: 3 }, context: trace.setSpan(context.active(), root),
});
root.end();

const meter = meterProvider.getMeter('tests.js.metrics', '0.1');
meter.createCounter('requests', { unit: '{request}' }).add(3, { route: '/pay' });
meter.createUpDownCounter('inflight').add(-2);
const hist = meter.createHistogram('latency', { unit: 'ms' });
for (const v of [5, 50, 500]) hist.record(v, { route: '/pay' });
meter.createObservableGauge('pool.in_use').addCallback((r) => r.observe(4, { pool: 'db' }));

await tracerProvider.forceFlush();
await loggerProvider.forceFlush();
await Promise.all([tracerProvider.shutdown(), loggerProvider.shutdown(), meterProvider.shutdown()]);
const ctx = root.spanContext();
console.log(JSON.stringify({ traceId: ctx.traceId, spanId: ctx.spanId }));
