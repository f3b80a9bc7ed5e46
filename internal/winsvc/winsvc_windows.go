//go:build windows

package winsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// Main runs run as a service when the SCM started the process, handles
// `service install|uninstall`, and otherwise runs run in the console.
func Main(ctx context.Context, s Service, args []string, stderr io.Writer, run RunFunc) int {
	if len(args) > 0 && args[0] == "service" {
		if err := manage(s, args[1:], stderr); err != nil {
			fmt.Fprintf(stderr, "%s: service: %v\n", s.Name, err)
			return 1
		}
		return 0
	}
	isService, err := svc.IsWindowsService()
	if err != nil {
		fmt.Fprintf(stderr, "%s: cannot tell whether the SCM started us: %v\n", s.Name, err)
		return 1
	}
	if !isService {
		return run(ctx, args, stderr)
	}
	h := &handler{ctx: ctx, name: s.Name, args: args, run: run}
	if err := svc.Run(s.Name, h); err != nil {
		return 1
	}
	return h.code
}

// handler is the svc.Handler: it runs the command and cancels its context
// on Stop or Shutdown.
type handler struct {
	ctx  context.Context
	name string
	args []string
	run  RunFunc
	code int
}

func (h *handler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	logw, closeLog := openLog(h.name)
	defer closeLog()
	done := make(chan int, 1)
	go func() { done <- h.run(ctx, h.args, logw) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case code := <-done:
			h.code = code
			if code != 0 {
				return true, uint32(code) // service-specific exit code
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, WaitHint: 30000}
				cancel() // run returns; the done case reports the exit
			}
		}
	}
}

// openLog opens %ProgramData%\<name>\<name>.log for appending, or
// discards the log when it cannot.
func openLog(name string) (io.Writer, func()) {
	dir := filepath.Join(os.Getenv("ProgramData"), name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return io.Discard, func() {}
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return io.Discard, func() {}
	}
	return f, func() { _ = f.Close() }
}

// manage installs or uninstalls the service.
func manage(s Service, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("want install [flags...] or uninstall")
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager (run as Administrator): %w", err)
	}
	defer func() { _ = m.Disconnect() }()
	switch args[0] {
	case "install":
		return install(m, s, args[1:], stderr)
	case "uninstall":
		if len(args) > 1 {
			return fmt.Errorf("uninstall takes no arguments, got %q", args[1:])
		}
		return uninstall(m, s, stderr)
	default:
		return fmt.Errorf("unknown %q: want install or uninstall", args[0])
	}
}

// install registers the service to start automatically with flags (the
// command's own flags, e.g. -config C:\ProgramData\leash-runner\runner.yaml)
// and to restart after a failure.
func install(m *mgr.Mgr, s Service, flags []string, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	if old, err := m.OpenService(s.Name); err == nil {
		_ = old.Close()
		return fmt.Errorf("service %s is already installed; uninstall it first", s.Name)
	}
	svcObj, err := m.CreateService(s.Name, exe, mgr.Config{
		DisplayName: s.DisplayName, Description: s.Description, StartType: mgr.StartAutomatic,
	}, flags...)
	if err != nil {
		return fmt.Errorf("create service %s: %w", s.Name, err)
	}
	defer func() { _ = svcObj.Close() }()
	restart := []mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
	}
	if err := svcObj.SetRecoveryActions(restart, uint32((24 * time.Hour).Seconds())); err != nil {
		return fmt.Errorf("set recovery actions: %w", err)
	}
	fmt.Fprintf(stderr, "installed service %s (%s %v); start it with: sc.exe start %s\n", s.Name, exe, flags, s.Name)
	return nil
}

func uninstall(m *mgr.Mgr, s Service, stderr io.Writer) error {
	svcObj, err := m.OpenService(s.Name)
	if err != nil {
		return fmt.Errorf("service %s is not installed: %w", s.Name, err)
	}
	defer func() { _ = svcObj.Close() }()
	if _, err := svcObj.Control(svc.Stop); err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return fmt.Errorf("stop service %s: %w", s.Name, err)
	}
	if err := svcObj.Delete(); err != nil {
		return fmt.Errorf("delete service %s: %w", s.Name, err)
	}
	fmt.Fprintf(stderr, "removed service %s\n", s.Name)
	return nil
}
