# crier's image: a static binary on scratch, run as a non-root user.
#
#   docker build -t crier .
#   docker run -p 8080:8080 crier
#
# The build stage uses the official Go image of the patched Go that crier is pinned to
# (go.mod's toolchain line); the final stage holds only the binary, the CA bundle (for rediss://
# URLs) and the passwd/group entries that USER needs.

FROM golang:1.27.3-bookworm AS build
# Should the image's Go ever differ, the go command fetches the pinned one from the module
# proxy rather than build with another.
ENV GOTOOLCHAIN=go1.27.3
WORKDIR /src

# The files the final stage copies besides the binary. Generated here because scratch
# has no shell; a layer of its own so that source changes do not redo it.
RUN mkdir -p /out/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && echo 'crier:x:65532:65532:crier:/nonexistent:/sbin/nologin' >/out/etc/passwd \
 && echo 'crier:x:65532:' >/out/etc/group \
 && echo 'hosts: files dns' >/out/etc/nsswitch.conf

# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/crier .

FROM scratch
COPY --from=build /out/etc/ /etc/
COPY --from=build /out/crier /crier
USER 65532:65532
EXPOSE 8080
STOPSIGNAL SIGTERM
# Exec form: the image has no shell. `crier healthcheck` reads -addr/CRIER_ADDR like the
# server, so a container started with -e CRIER_ADDR=... checks the address it serves on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/crier", "healthcheck"]
ENTRYPOINT ["/crier"]
