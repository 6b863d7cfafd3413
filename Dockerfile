# The service's image: a static binary on distroless, run as a non-root user.
#
#   docker build -t meshkit .
#   docker run --rm -p 8080:8080 -p 9090:9090 meshkit
#
# docker-compose.yml builds it for the local stack.

FROM golang:1.26 AS build
WORKDIR /src
# The module cache is its own layer: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static (no cgo), without local paths (-trimpath) and without symbol tables (-s -w).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/service ./cmd/service \
	&& mkdir /out/certs

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/service /service
# An empty /certs owned by the service's user: a named volume mounted there
# takes its owner, so `service devcerts -dir /certs` can write into it
# (docker-compose.yml does).
COPY --from=build --chown=65532:65532 /out/certs /certs
USER 65532:65532
EXPOSE 8080 9090
# `service healthcheck` asks the admin listener's /readyz: the image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/service", "healthcheck"]
ENTRYPOINT ["/service"]
