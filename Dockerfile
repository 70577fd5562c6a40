# livedash image: a static binary on an empty base, run as a non-root user,
# the store on a volume, health from /readyz.
#
#   docker build -t livedash .
#   docker run -p 7070:7070 -v livedash-data:/var/lib/livedash livedash
#
# Inside the container livedash listens on 0.0.0.0:7070 (and warns until a
# login is configured): mount a web config file and pass
# --web.config.file, or publish the port on 127.0.0.1 only.

FROM node:20-bookworm-slim AS assets
WORKDIR /src/assets
COPY assets/package.json assets/package-lock.json assets/build.sh ./
COPY assets/web ./web
RUN bash build.sh

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=assets /src/assets/web/vendor ./assets/web/vendor
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/livedash ./cmd/livedash
RUN mkdir -p /out/state && chown 65532:65532 /out/state

FROM scratch
COPY --from=build /out/livedash /livedash
COPY --from=build --chown=65532:65532 /out/state /var/lib/livedash
USER 65532:65532
VOLUME /var/lib/livedash
EXPOSE 7070
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["/livedash", "healthcheck", "--url", "http://127.0.0.1:7070/readyz"]
ENTRYPOINT ["/livedash", "serve", "--listen", "0.0.0.0:7070", "--store", "/var/lib/livedash/livedash.db"]
