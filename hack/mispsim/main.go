// Command mispsim runs the in-process MISP 2.5.1 double of package misptest as a standalone
// server: a REST API that answers like a real MISP, a ZeroMQ publisher that sends MISP's exact
// message sequences, and an admin API under /_sim/ to simulate partner pulls and pushes, inject
// faults and read statistics. It is a development and demo tool: it binds loopback only unless
// -allow-remote is given.
//
//	mispsim -seed seed.json -background-jobs
//	curl -s -H "Authorization: $KEY" -H 'Accept: application/json' http://127.0.0.1:8443/servers/getVersion
//	curl -s -X POST http://127.0.0.1:8443/_sim/pull -d '{"orgc":{"name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},"published":true,"attributes":3}'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "mispsim:", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	listen, zmqListen    string
	apiKey               string
	zmqUser, zmqPassword string
	latency              time.Duration
	heartbeat            time.Duration
	seedFile             string
	backgroundJobs       bool
	jobDelay             time.Duration
	allowRemote          bool
	noZMQ                bool
	randomSeed           uint64
}

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("mispsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8443", "REST listen address (plain HTTP)")
	fs.StringVar(&c.zmqListen, "zmq-listen", "127.0.0.1:50000", "ZeroMQ PUB bind address (MISP's default port)")
	fs.StringVar(&c.apiKey, "api-key", "", "site admin API key, 40 letters/digits (default $MISPSIM_API_KEY, else misptest.DefaultAdminKey)")
	fs.StringVar(&c.zmqUser, "zmq-user", "", "ZeroMQ PLAIN username (optional)")
	fs.StringVar(&c.zmqPassword, "zmq-password", "", "ZeroMQ PLAIN password (default $MISPSIM_ZMQ_PASSWORD)")
	fs.DurationVar(&c.latency, "latency", 0, "latency added to every REST call")
	fs.DurationVar(&c.heartbeat, "heartbeat", 0, "misp_json_self after this idle time (0: 10s like MISP, <0: never)")
	fs.StringVar(&c.seedFile, "seed", "", "JSON file with orgs, users and events to load at start")
	fs.BoolVar(&c.backgroundJobs, "background-jobs", false, `publish answers "Job queued" and publishes a moment later (MISP.background_jobs)`)
	fs.DurationVar(&c.jobDelay, "job-delay", 300*time.Millisecond, "delay of a queued publish")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "allow non-loopback listen addresses (the /_sim/ API then needs the admin key)")
	fs.BoolVar(&c.noZMQ, "no-zmq", false, "do not start the ZeroMQ publisher")
	fs.Uint64Var(&c.randomSeed, "random-seed", 1, "seed of generated keys, UUIDs, attribute values and fault decisions")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// Secrets may come from the environment so that they stay out of the process list.
	if c.apiKey == "" {
		c.apiKey = getenv("MISPSIM_API_KEY")
	}
	if c.zmqPassword == "" {
		c.zmqPassword = getenv("MISPSIM_ZMQ_PASSWORD")
	}
	if !c.allowRemote {
		for _, a := range []struct{ flag, addr string }{{"-listen", c.listen}, {"-zmq-listen", c.zmqListen}} {
			if a.flag == "-zmq-listen" && c.noZMQ {
				continue
			}
			if err := requireLoopback(a.addr); err != nil {
				return c, fmt.Errorf("%s %s: %w (use -allow-remote to bind elsewhere)", a.flag, a.addr, err)
			}
		}
	}
	return c, nil
}

// requireLoopback accepts "127.0.0.1:port", "[::1]:port" and "localhost:port" only.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parse address: %w", err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("not a loopback address")
	}
	return nil
}

// run starts the simulator and blocks until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	c, err := parseFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	logger := log.New(stderr, "mispsim: ", log.LstdFlags)
	s, err := misptest.Start(misptest.Options{
		AdminKey:       c.apiKey,
		ZMQ:            !c.noZMQ,
		ZMQUser:        c.zmqUser,
		ZMQPassword:    c.zmqPassword,
		HeartbeatEvery: c.heartbeat,
		BackgroundJobs: c.backgroundJobs,
		JobDelay:       c.jobDelay,
		Addr:           c.listen,
		ZMQAddr:        c.zmqListen,
		Seed:           c.randomSeed,
		Logf:           logger.Printf,
	})
	if err != nil {
		return fmt.Errorf("start the MISP double: %w", err)
	}
	defer s.Close()
	if c.seedFile != "" {
		n, err := loadSeedFile(s, c.seedFile)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded %d orgs, %d users, %d events from %s\n", n.orgs, n.users, n.events, c.seedFile)
	}
	if c.latency > 0 {
		s.SetFault("", misptest.Fault{Latency: c.latency})
	}
	sim := &simAPI{s: s, requireKey: c.allowRemote, logf: logger.Printf}
	s.HandleAdmin(sim.handler())

	keyNote := "given"
	if c.apiKey == "" {
		keyNote = "misptest.DefaultAdminKey " + misptest.DefaultAdminKey
	}
	fmt.Fprintf(stdout, "MISP 2.5.1 double listening on %s\n", s.URL())
	if !c.noZMQ {
		auth := "NULL"
		if c.zmqUser != "" {
			auth = "PLAIN user " + c.zmqUser
		}
		fmt.Fprintf(stdout, "ZeroMQ publisher on %s (%s)\n", s.ZMQEndpoint(), auth)
	}
	fmt.Fprintf(stdout, "admin API key: %s\n", keyNote)
	fmt.Fprintf(stdout, "simulator API: %s/_sim/ (pull, push, fault, down, publisher, events, messages, requests, stats)\n", s.URL())
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return nil
}
