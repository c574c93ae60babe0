/**
 * The recording span: a lean implementation of the `@opentelemetry/api` `Span` interface that also
 * satisfies the SDK's `ReadableSpan` shape, so the stock OTLP serializers can export it unchanged.
 *
 * Times are kept as `performance.now()` milliseconds while the span is live and converted to
 * `HrTime` only when an exporter reads them, which keeps start and end cheap. Attribute, event and
 * link counts and string lengths are capped so one span's memory stays bounded.
 *
 * @module
 */

import {
  type Attributes,
  type AttributeValue,
  type Exception,
  type HrTime,
  type Link,
  type Span,
  type SpanContext,
  type SpanKind,
  type SpanStatus,
  SpanStatusCode,
  type TimeInput,
} from "@opentelemetry/api";
import type { InstrumentationScope } from "@opentelemetry/core";
import type { Resource } from "@opentelemetry/resources";
import type { ReadableSpan, TimedEvent } from "@opentelemetry/sdk-trace";

/** Bounds on what one span holds (the SDK's span limits, `OTEL_SPAN_*_LIMIT`). */
export interface SpanLimits {
  /** Attributes kept per span; later ones are counted as dropped. */
  attributeCount: number;
  /** Longest string attribute value kept; longer values are truncated. */
  attributeValueLength: number;
  /** Events kept per span. */
  eventCount: number;
  /** Links kept per span. */
  linkCount: number;
  /** Attributes kept per event. */
  eventAttributeCount: number;
  /** Attributes kept per link. */
  linkAttributeCount: number;
}

/** Default limits (ERD §7.1: under 10 KB per trace for typical spans). */
export const DEFAULT_SPAN_LIMITS: Readonly<SpanLimits> = Object.freeze({
  attributeCount: 64,
  attributeValueLength: 1024,
  eventCount: 32,
  linkCount: 16,
  eventAttributeCount: 32,
  linkAttributeCount: 32,
});

/** Where ended spans go: the batch export processor, or a test collector. */
export interface SpanSink {
  /** Called once when a recording span ends. Must not throw and must not block. */
  onEnd(span: RecordingSpan): void;
}

/** What every span of one tracer provider shares: resource, scope and the sink. */
export interface SpanShared {
  /** The process resource (service.name, version, host). */
  readonly resource: Resource;
  /** The instrumentation scope of the tracer that created the span. */
  readonly scope: InstrumentationScope;
  /** Receives the span when it ends. */
  readonly sink: SpanSink;
  /** Bounds on attributes, events and links. */
  readonly limits: Readonly<SpanLimits>;
}

const ORIGIN = performance.timeOrigin;
const UNSET_STATUS: SpanStatus = Object.freeze({ code: SpanStatusCode.UNSET });
// Shared by every span without events or links; readers never mutate it.
const NONE: never[] = Object.freeze([]) as unknown as never[];

/**
 * Converts a `performance.now()` reading to OpenTelemetry's `[seconds, nanoseconds]` epoch time,
 * in whole microseconds: the clock is no finer, and exporters that write microseconds (Zipkin's
 * JSON, which Jaeger refuses with a fraction) get integers.
 */
export function perfToHrTime(perfMs: number): HrTime {
  const epochMs = ORIGIN + perfMs;
  const seconds = Math.floor(epochMs / 1000);
  const nanos = Math.round((epochMs - seconds * 1000) * 1e3) * 1e3;
  return nanos >= 1e9 ? [seconds + 1, nanos - 1e9] : [seconds, nanos];
}

/** Converts an API `TimeInput` (epoch ms number, HrTime or Date) to a `performance.now()` reading. */
export function timeInputToPerf(t: TimeInput): number {
  if (typeof t === "number") {
    // Values below the time origin are already relative (performance.now()); others are epoch ms.
    return t < ORIGIN ? t : t - ORIGIN;
  }
  if (Array.isArray(t)) return t[0] * 1000 + t[1] / 1e6 - ORIGIN;
  return (t as Date).getTime() - ORIGIN;
}

function clampValue(v: AttributeValue, max: number): AttributeValue {
  if (typeof v === "string") return v.length > max ? v.slice(0, max) : v;
  if (Array.isArray(v) && v.some((m) => typeof m === "string" && m.length > max)) {
    return v.map((m) =>
      typeof m === "string" && m.length > max ? m.slice(0, max) : m
    ) as AttributeValue;
  }
  return v;
}

/** At most `max` of `attributes`, and how many were left out. */
function capAttributes(attributes: Attributes, max: number): [Attributes, number] {
  const keys = Object.keys(attributes);
  if (keys.length <= max) return [attributes, 0];
  const kept: Attributes = {};
  for (const key of keys.slice(0, max)) kept[key] = attributes[key];
  return [kept, keys.length - max];
}

/**
 * How many attributes `attributes` has when {@linkcode RecordingSpan.setAttribute} would keep every
 * one as it is (no unset value, no string over the length limit, no array, within the count);
 * otherwise -1.
 */
function keptAsIs(attributes: Attributes, limits: Readonly<SpanLimits>): number {
  let count = 0;
  for (const key in attributes) {
    const v = attributes[key];
    if (v === undefined || v === null || typeof v === "object") return -1;
    if (typeof v === "string" && v.length > limits.attributeValueLength) return -1;
    count++;
  }
  return count <= limits.attributeCount ? count : -1;
}

// What few spans have: events, links and their dropped counts, in one object made on first use.
interface RareParts {
  events: TimedEvent[];
  links: Link[];
  droppedEvents: number;
  droppedLinks: number;
}

/**
 * A span that records data and is handed to a {@linkcode SpanSink} when it ends.
 *
 * Its memory is held until export (ERD §7.1: under 10 KB per trace), so the layout is lean: the
 * end is kept as a whole-microsecond duration (a small integer, where a second time would be a
 * boxed double; it also says whether the span ended), and events, links and their counts live in
 * one object that only spans using them allocate.
 */
export class RecordingSpan implements Span, ReadableSpan {
  /** Span name; server and client spans use `{METHOD} {route}`. */
  name: string;
  /** Server, client, internal, producer or consumer. */
  readonly kind: SpanKind;
  /** Attributes set so far (bounded by the provider's {@linkcode SpanLimits}). */
  readonly attributes: Attributes;
  /** Status; left unset unless an error is recorded or a handler sets it. */
  status: SpanStatus = UNSET_STATUS;
  /** Parent span context, absent for a root span. */
  readonly parentSpanContext: SpanContext | undefined;
  /** Attributes beyond {@linkcode SpanLimits.attributeCount}. */
  droppedAttributesCount = 0;

  readonly #context: SpanContext;
  readonly #shared: SpanShared;
  // Start as a `performance.now()` reading; duration in whole µs, -1 until ended.
  readonly #start: number;
  #durationMicros = -1;
  #attributeCount = 0;
  #rare: RareParts | undefined;

  /** Creates a started span; `startPerf` (a `performance.now()` reading) defaults to now. */
  constructor(
    shared: SpanShared,
    context: SpanContext,
    name: string,
    kind: SpanKind,
    parent: SpanContext | undefined,
    attributes: Attributes | undefined,
    links: Link[] | undefined,
    startPerf: number = performance.now(),
  ) {
    this.#shared = shared;
    this.#context = context;
    this.name = name;
    this.kind = kind;
    this.parentSpanContext = parent;
    this.#start = startPerf;
    const count = attributes === undefined ? -1 : keptAsIs(attributes, shared.limits);
    if (count >= 0) {
      // One clone of the start attributes instead of a checked store per key.
      this.attributes = { ...attributes };
      this.#attributeCount = count;
    } else {
      this.attributes = {};
      if (attributes) this.setAttributes(attributes);
    }
    if (links && links.length > 0) this.addLinks(links);
  }

  #rareParts(): RareParts {
    return this.#rare ??= { events: [], links: [], droppedEvents: 0, droppedLinks: 0 };
  }

  /** True once `end()` ran. */
  get ended(): boolean {
    return this.#durationMicros >= 0;
  }

  /** Links to other spans (for example the trace id a client tried to force). */
  get links(): Link[] {
    return this.#rare?.links ?? NONE;
  }

  /** Timed events, including recorded exceptions. */
  get events(): TimedEvent[] {
    return this.#rare?.events ?? NONE;
  }

  /** Events dropped beyond {@linkcode SpanLimits.eventCount}. */
  get droppedEventsCount(): number {
    return this.#rare?.droppedEvents ?? 0;
  }

  /** Links dropped beyond {@linkcode SpanLimits.linkCount}. */
  get droppedLinksCount(): number {
    return this.#rare?.droppedLinks ?? 0;
  }

  /** The span's own context (trace id, span id, flags). */
  spanContext(): SpanContext {
    return this.#context;
  }

  /** Sets one attribute; ignored after end or when the value is undefined. */
  setAttribute(key: string, value: AttributeValue | undefined): this {
    if (this.ended || value === undefined || value === null) return this;
    if (!(key in this.attributes)) {
      if (this.#attributeCount >= this.#shared.limits.attributeCount) {
        this.droppedAttributesCount++;
        return this;
      }
      this.#attributeCount++;
    }
    this.attributes[key] = clampValue(value, this.#shared.limits.attributeValueLength);
    return this;
  }

  /** Sets several attributes. */
  setAttributes(attributes: Attributes): this {
    for (const key in attributes) this.setAttribute(key, attributes[key]);
    return this;
  }

  /** Adds a timed event. */
  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.ended) return this;
    const rare = this.#rareParts();
    const events = rare.events;
    if (events.length >= this.#shared.limits.eventCount) {
      rare.droppedEvents++;
      return this;
    }
    let attributes: Attributes | undefined;
    if (
      attributesOrTime !== undefined &&
      (typeof attributesOrTime === "number" || Array.isArray(attributesOrTime) ||
        attributesOrTime instanceof Date)
    ) {
      time = attributesOrTime as TimeInput;
    } else {
      attributes = attributesOrTime as Attributes | undefined;
    }
    const perf = time === undefined ? performance.now() : timeInputToPerf(time);
    const [kept, dropped] = capAttributes(
      attributes ?? {},
      this.#shared.limits.eventAttributeCount,
    );
    events.push({
      name,
      attributes: kept,
      time: perfToHrTime(perf),
      droppedAttributesCount: dropped,
    });
    return this;
  }

  /** Adds a link to another span. */
  addLink(link: Link): this {
    if (this.ended) return this;
    const rare = this.#rareParts();
    const links = rare.links;
    if (links.length >= this.#shared.limits.linkCount) rare.droppedLinks++;
    else if (link.attributes) {
      const [kept, dropped] = capAttributes(
        link.attributes,
        this.#shared.limits.linkAttributeCount,
      );
      links.push(
        dropped === 0 ? link : { ...link, attributes: kept, droppedAttributesCount: dropped },
      );
    } else links.push(link);
    return this;
  }

  /** Adds several links. */
  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  /** Sets the status; an OK status is final, as the specification asks. */
  setStatus(status: SpanStatus): this {
    if (this.ended || this.status.code === SpanStatusCode.OK) return this;
    this.status = status;
    return this;
  }

  /** Renames the span (used when the route is known only after the span started). */
  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }

  /** Ends the span once and hands it to the sink. */
  end(endTime?: TimeInput): void {
    if (this.ended) return;
    const end = endTime === undefined ? performance.now() : timeInputToPerf(endTime);
    const micros = end > this.#start ? Math.round((end - this.#start) * 1000) : 0;
    // An int32 stays a small integer in the object; spans over 35 minutes take a boxed double.
    this.#durationMicros = micros <= 0x7fffffff ? micros | 0 : micros;
    this.#shared.sink.onEnd(this);
  }

  /** Always true: this class only exists for sampled or recorded spans. */
  isRecording(): boolean {
    return !this.ended;
  }

  /** Records an exception event following the OpenTelemetry exception conventions. */
  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === "string") {
      attributes["exception.message"] = exception;
    } else if (exception) {
      const e = exception as Error & { code?: unknown };
      if (e.name) attributes["exception.type"] = e.name;
      else if (e.code !== undefined) attributes["exception.type"] = String(e.code);
      if (e.message) attributes["exception.message"] = e.message;
      if (e.stack) {
        attributes["exception.stacktrace"] = clampValue(
          e.stack,
          this.#shared.limits.attributeValueLength,
        ) as string;
      }
    }
    this.addEvent("exception", attributes, time);
  }

  /** Start time in epoch `HrTime`, computed when an exporter asks. */
  get startTime(): HrTime {
    return perfToHrTime(this.#start);
  }

  /** End time in epoch `HrTime` (the start until ended). */
  get endTime(): HrTime {
    return perfToHrTime(this.#start + Math.max(0, this.#durationMicros) / 1000);
  }

  /** Duration as `HrTime`. */
  get duration(): HrTime {
    const micros = Math.max(0, this.#durationMicros);
    const s = Math.floor(micros / 1e6);
    return [s, (micros - s * 1e6) * 1000];
  }

  /** Duration in milliseconds (for logs and the demo). */
  get durationMs(): number {
    return Math.max(0, this.#durationMicros) / 1000;
  }

  /** The process resource. */
  get resource(): Resource {
    return this.#shared.resource;
  }

  /** The instrumentation scope. */
  get instrumentationScope(): InstrumentationScope {
    return this.#shared.scope;
  }
}
