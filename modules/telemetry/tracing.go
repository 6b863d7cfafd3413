package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/internal/config"
)

// DefaultServiceName is the resource's service.name when neither
// OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names the service.
const DefaultServiceName = buildinfo.Name

// The OTLP protocols of OTEL_EXPORTER_OTLP_PROTOCOL that the service speaks.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// ErrUnsupportedSetting is returned (wrapped, naming the variable) by
// [NewTracerProvider] for an OTEL_* value the service does not support, such
// as OTEL_TRACES_SAMPLER=jaeger_remote or OTEL_EXPORTER_OTLP_PROTOCOL=http/json.
// The service refuses to start rather than silently trace differently from
// what was asked.
// The error is a *config.Error, which the service reports in one line.
var ErrUnsupportedSetting = errors.New("unsupported setting")

// tracingEnv is the tracing part of the standard OpenTelemetry environment.
// Tracing is configured by these variables only; they are not part of
// [Config]. The exporter also reads the variables it knows itself
// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, ...).
type tracingEnv struct {
	// Exporter is OTEL_TRACES_EXPORTER: "otlp" (default) or "none".
	Exporter string
	// Endpoint is the URL spans are sent to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// as it is, else OTEL_EXPORTER_OTLP_ENDPOINT (with /v1/traces appended for
	// HTTP). Default: none, and then no exporter runs and nothing is sent.
	Endpoint string
	// Protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
	// OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" or "http/protobuf" (default).
	Protocol string
	// Sampler is OTEL_TRACES_SAMPLER: always_on, always_off, traceidratio,
	// parentbased_always_on (default), parentbased_always_off or
	// parentbased_traceidratio.
	Sampler string
	// SamplerArg is OTEL_TRACES_SAMPLER_ARG, the ratio of the traceidratio
	// samplers, in [0, 1]. Default 1.
	SamplerArg float64
	// Insecure is OTEL_EXPORTER_OTLP_TRACES_INSECURE, else
	// OTEL_EXPORTER_OTLP_INSECURE: plain-text gRPC to an endpoint given
	// without a scheme ("collector:4317"). An http:// or https:// endpoint
	// says it itself. Default false.
	Insecure bool
}

// readTracingEnv reads and checks the tracing variables through lookup
// (os.LookupEnv in production). An empty variable counts as unset.
func readTracingEnv(lookup func(string) (string, bool)) (tracingEnv, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	env := tracingEnv{
		Exporter:   strings.ToLower(cmp.Or(get("OTEL_TRACES_EXPORTER"), "otlp")),
		Protocol:   strings.ToLower(cmp.Or(get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), get("OTEL_EXPORTER_OTLP_PROTOCOL"), ProtocolHTTPProtobuf)),
		Sampler:    strings.ToLower(cmp.Or(get("OTEL_TRACES_SAMPLER"), "parentbased_always_on")),
		SamplerArg: 1,
	}
	switch env.Exporter {
	case "otlp", "none":
	default:
		return tracingEnv{}, config.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q: %w (want otlp or none)", env.Exporter, ErrUnsupportedSetting)
	}
	switch env.Protocol {
	case ProtocolGRPC, ProtocolHTTPProtobuf:
	default:
		return tracingEnv{}, config.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL=%q: %w (want grpc or http/protobuf)", env.Protocol, ErrUnsupportedSetting)
	}
	if arg := get("OTEL_TRACES_SAMPLER_ARG"); arg != "" && strings.HasSuffix(env.Sampler, "traceidratio") {
		ratio, err := strconv.ParseFloat(arg, 64)
		if err != nil || ratio < 0 || ratio > 1 {
			return tracingEnv{}, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG=%q: must be a ratio between 0 and 1", arg)
		}
		env.SamplerArg = ratio
	}
	if _, err := env.sampler(); err != nil {
		return tracingEnv{}, err
	}
	if env.Exporter == "none" {
		return env, nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"} {
		if v := get(name); v != "" {
			insecure, err := strconv.ParseBool(strings.ToLower(v))
			if err != nil {
				return tracingEnv{}, fmt.Errorf("telemetry: %s=%q: must be true or false", name, v)
			}
			env.Insecure = insecure
			break
		}
	}
	if traces := get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); traces != "" {
		if err := env.checkEndpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces); err != nil {
			return tracingEnv{}, err
		}
		env.Endpoint = traces
	} else if base := get("OTEL_EXPORTER_OTLP_ENDPOINT"); base != "" {
		if err := env.checkEndpoint("OTEL_EXPORTER_OTLP_ENDPOINT", base); err != nil {
			return tracingEnv{}, err
		}
		env.Endpoint = base
		if env.Protocol == ProtocolHTTPProtobuf {
			// The spec: the signal's path is appended to the base endpoint.
			env.Endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
		}
	}
	return env, nil
}

// checkEndpoint checks an endpoint variable: an http:// or https:// URL, or
// for gRPC also host:port without a scheme (then OTEL_EXPORTER_OTLP_INSECURE
// chooses between TLS and plain text).
func (e tracingEnv) checkEndpoint(name, value string) error {
	if e.Protocol == ProtocolGRPC && !strings.Contains(value, "://") {
		if _, port, err := net.SplitHostPort(value); err != nil || port == "" {
			return fmt.Errorf("telemetry: %s=%q: must be host:port, or an http:// or https:// URL", name, value)
		}
		return nil
	}
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("telemetry: %s=%q: must be an http:// or https:// URL", name, value)
	}
	return nil
}

// sampler returns the sampler OTEL_TRACES_SAMPLER names.
func (e tracingEnv) sampler() (sdktrace.Sampler, error) {
	switch e.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(e.SamplerArg), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(e.SamplerArg)), nil
	}
	return nil, config.Errorf("telemetry: OTEL_TRACES_SAMPLER=%q: %w (want always_on, always_off, traceidratio or parentbased_*)", e.Sampler, ErrUnsupportedSetting)
}

// spanExporter returns the OTLP exporter for the endpoint, or nil when there
// is none. It connects lazily: an unreachable endpoint does not fail start-up.
func (e tracingEnv) spanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if e.Endpoint == "" {
		return nil, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch {
	case e.Protocol == ProtocolGRPC && !strings.Contains(e.Endpoint, "://"):
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(e.Endpoint)}
		if e.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case e.Protocol == ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(e.Endpoint))
	default:
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(e.Endpoint))
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP %s exporter to %s: %w", e.Protocol, e.Endpoint, err)
	}
	return exp, nil
}

// ErrMalformedResourceAttributes is returned (wrapped, naming the variable)
// by [NewResource] when OTEL_RESOURCE_ATTRIBUTES is not a list of
// key=value pairs with percent-encoded values. The resource it returns then
// leaves the whole variable out, as the specification says, and [Module]
// logs the error at Warn and starts.
var ErrMalformedResourceAttributes = errors.New("malformed resource attributes, all left out")

// NewResource describes the service to telemetry backends:
//
//   - service.name "meshkit", service.version the build's version
//     (buildinfo.Version) and service.instance.id a random UUID, made anew
//     for each process, unless the environment says otherwise;
//   - the attributes of OTEL_RESOURCE_ATTRIBUTES, and OTEL_SERVICE_NAME's
//     service.name above all;
//   - the SDK's own (telemetry.sdk.*).
//
// A malformed OTEL_RESOURCE_ATTRIBUTES is left out whole: the resource is
// returned with an error wrapping [ErrMalformedResourceAttributes].
func NewResource(ctx context.Context) (*resource.Resource, error) {
	return newResource(ctx, os.LookupEnv)
}

func newResource(ctx context.Context, lookup lookupFunc) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{
		semconv.ServiceName(DefaultServiceName),
		semconv.ServiceVersion(buildinfo.Version()),
		semconv.ServiceInstanceID(uuid.NewString()),
	}
	fromEnv, malformed := parseResourceAttributes(getEnv(lookup, "OTEL_RESOURCE_ATTRIBUTES"))
	attrs = append(attrs, fromEnv...) // later wins
	if name := getEnv(lookup, "OTEL_SERVICE_NAME"); name != "" {
		attrs = append(attrs, semconv.ServiceName(name))
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, malformed
}

// parseResourceAttributes parses OTEL_RESOURCE_ATTRIBUTES: key=value pairs,
// comma separated, values percent-encoded. A malformed list gives no
// attributes and an error naming the variable.
func parseResourceAttributes(value string) ([]attribute.KeyValue, error) {
	if value == "" {
		return nil, nil
	}
	var attrs []attribute.KeyValue
	for _, pair := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(pair, "=")
		key := strings.TrimSpace(k)
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if !ok || key == "" || err != nil {
			return nil, fmt.Errorf("telemetry: OTEL_RESOURCE_ATTRIBUTES=%q: %q is not key=value (percent-encoded): %w", value, pair, ErrMalformedResourceAttributes)
		}
		attrs = append(attrs, attribute.String(key, val))
	}
	return attrs, nil
}

// NewTracerProvider returns a TracerProvider for res configured by the
// standard OTEL_* variables only (see the package comment). With no OTLP
// endpoint it has no exporter and sends nothing anywhere, but spans still get
// trace and span IDs, so logs and problem bodies can carry them. With one,
// sampled spans are batched to it. It fails, naming the variable, on a value
// it cannot honour (see [ErrUnsupportedSetting]).
//
// The caller owns the provider: ForceFlush and Shutdown it when done.
func NewTracerProvider(ctx context.Context, res *resource.Resource) (*sdktrace.TracerProvider, error) {
	env, err := readTracingEnv(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	exp, err := env.spanExporter(ctx)
	if err != nil {
		return nil, err
	}
	return newTracerProvider(res, env, exp)
}

// newTracerProvider builds the provider env describes, batching sampled spans
// to exp when it is not nil.
func newTracerProvider(res *resource.Resource, env tracingEnv, exp sdktrace.SpanExporter) (*sdktrace.TracerProvider, error) {
	sampler, err := env.sampler()
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sampler)}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// NewPropagator returns the propagator of the README's contract: W3C
// tracecontext and baggage.
func NewPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// shutdownTracerProvider flushes tp's pending spans and stops it, within ctx.
// Its error (a collector unreachable, the time up) is for the caller to
// report: [Module] logs it and lets the stop go on.
func shutdownTracerProvider(ctx context.Context, tp *sdktrace.TracerProvider) error {
	flushErr := tp.ForceFlush(ctx)
	if err := errors.Join(flushErr, tp.Shutdown(ctx)); err != nil {
		return fmt.Errorf("telemetry: flush and stop tracing: %w", err)
	}
	return nil
}
