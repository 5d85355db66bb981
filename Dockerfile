# a2abus: agentd and scalerd as static binaries in a small image.
#
#   docker build -t a2abus:dev .
#   docker compose up          # the 3-node cluster in docker-compose.yml
#
# The builder's Go version follows go.mod (a test checks it).

FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/agentd ./cmd/scalerd

# Alpine rather than scratch: busybox wget answers the compose health checks.
FROM alpine:3.22
RUN adduser -D -H -u 10001 a2abus
COPY --from=build /out/agentd /out/scalerd /usr/local/bin/
USER a2abus
EXPOSE 8080 8081
ENTRYPOINT ["agentd"]
