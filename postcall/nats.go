package postcall

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures an embedded NATS server.
type EmbeddedConfig struct {
	// StoreDir is where JetStream keeps streams (jobs and states survive a restart).
	StoreDir string
	// Listen is the client address, loopback only: "127.0.0.1:0" (the default) picks a free port.
	Listen string
}

// Embedded is a NATS server with JetStream running inside this process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a NATS server with JetStream on a loopback address and waits until it accepts
// connections.
func StartEmbedded(cfg EmbeddedConfig, log *slog.Logger) (*Embedded, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("postcall: embedded NATS: no store folder")
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("postcall: embedded NATS address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("postcall: embedded NATS address %q: must be a loopback address (use an external NATS server, --nats, for more)", listen)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("postcall: embedded NATS address %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:      "tapedeck-embedded",
		Host:            host,
		Port:            port,
		JetStream:       true,
		StoreDir:        cfg.StoreDir,
		NoSigs:          true,
		NoSystemAccount: true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("postcall: embedded NATS: %w", err)
	}
	srv.SetLoggerV2(natsLogger{log.With("component", "nats")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("postcall: embedded NATS did not start on %s within 15 s", listen)
	}
	return &Embedded{srv: srv}, nil
}

// URL is the server's client URL ("nats://127.0.0.1:PORT").
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Connect connects to the NATS server at url (reconnecting forever once connected) and logs
// disconnections. ctx bounds the first connection only: its dial stops when ctx ends (the handshake
// that follows a dial is bounded by a 5 s timeout). Connect starts no goroutine of its own.
func Connect(ctx context.Context, url, name string, log *slog.Logger) (*nats.Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer := &firstDialer{ctx: ctx, d: net.Dialer{Timeout: 5 * time.Second}}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.Timeout(5 * time.Second),
		nats.SetCustomDialer(dialer),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	nc, err := nats.Connect(url, opts...)
	dialer.connected()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("postcall: connect to NATS at %s: %w", redact(url), err)
	}
	return nc, nil
}

// firstDialer dials with the context of Connect until the first connection is made, and without
// it afterwards, so that reconnections do not end with the context Connect was called with.
type firstDialer struct {
	mu  sync.Mutex
	ctx context.Context // nil once connected
	d   net.Dialer
}

func (f *firstDialer) Dial(network, address string) (net.Conn, error) {
	f.mu.Lock()
	ctx := f.ctx
	f.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	return f.d.DialContext(ctx, network, address)
}

func (f *firstDialer) connected() {
	f.mu.Lock()
	f.ctx = nil
	f.mu.Unlock()
}

// natsLogger sends the embedded server's log to slog: notices at debug, warnings and errors as such.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  {}
