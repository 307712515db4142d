// Process harness for multi-process tests: start real DASH binaries on free
// ports with their own data directories, wait for readiness by polling, kill
// them with SIGKILL, restart them, and keep their logs when a test fails.
//
// Binaries are found under $DASH_BIN_ROOT (CMake sets it to the build tree;
// under Bazel the default "." is the runfiles root), at the same relative
// paths in both builds: node/dash-node, dashctl/dashctl.
// Not thread-safe: drive each object from one thread.
#ifndef DASH_TESTS_HARNESS_PROCESS_H_
#define DASH_TESTS_HARNESS_PROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/jwt.h"
#include "common/security.h"
#include "grpcpp/channel.h"

namespace dash::testing {

// Path of a project binary, e.g. BinaryPath("node/dash-node").
std::string BinaryPath(const std::string& relative);
// Path of a source file, e.g. SourcePath("deploy/tls/make-certs.sh"): in the
// source tree under CMake, in the runfiles root under Bazel (as a data dep).
std::string SourcePath(const std::string& relative);

// Polls `condition` every `interval` until it holds (OK) or `timeout` passes
// (DEADLINE_EXCEEDED naming `what`).
absl::Status PollUntil(const std::function<bool()>& condition, absl::Duration timeout,
                       const std::string& what, absl::Duration interval = absl::Milliseconds(20));

// How the processes a test binary starts are secured. By default as in
// production: TLS with certificates of a CA made once per test binary by
// deploy/tls/make-certs.sh, and bearer tokens verified with its key file.
// DASH_TEST_INSECURE=1 starts them with --insecure_no_auth instead.
// Get() also points dashctl at the credentials (DASH_TLS_CA and
// DASH_TOKEN_FILE, an admin token), so that CLI tests need no flags.
class TestSecurity {
 public:
  static const TestSecurity& Get();

  bool secure() const { return secure_; }
  // Holds ca.pem, <kind>.pem/.key and auth-keys.json (secure only).
  const std::string& dir() const { return dir_; }
  // The flags of a server of `kind` ("node", "router", "controlplane").
  std::vector<std::string> ServerArgs(const std::string& kind) const;
  // A cluster member's credentials (the node certificate) plus an admin
  // token: what the harness's own channels use.
  const ClientCredentials& member() const { return member_; }
  // A Security of a cluster member, for in-test servers that stand in for a
  // node (their port then speaks TLS like a real one).
  std::shared_ptr<const Security> MemberSecurity() const;
  // A token signed with the cluster's key (secure only).
  std::string Mint(const std::vector<std::string>& tenants, const std::vector<jwt::Role>& roles,
                   absl::Duration ttl = absl::Hours(1)) const;
  const jwt::TokenKeys& keys() const { return *keys_; }
  const std::string& ca_pem() const { return member_.ca_pem; }

 private:
  TestSecurity();
  bool secure_ = false;
  std::string dir_;
  std::unique_ptr<jwt::TokenKeys> keys_;
  ClientCredentials member_;
};

// A channel to `address` with TestSecurity's member credentials.
std::shared_ptr<grpc::Channel> MemberChannel(const std::string& address);

// A directory for one test's processes, removed when the test passed and kept
// (with its path printed) when it failed.
class TestDir {
 public:
  TestDir();
  ~TestDir();
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process whose stdout and stderr go to a log file.
class Process {
 public:
  static absl::StatusOr<std::unique_ptr<Process>> Start(const std::string& binary,
                                                        const std::vector<std::string>& args,
                                                        const std::string& log_path);
  // SIGKILLs the process if it still runs, and reaps it.
  ~Process();

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int sig);
  // Waits for exit; returns the wait status.
  int Wait();

 private:
  explicit Process(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
  int status_ = 0;
};

// A DASH server binary with its own directory, listening on a free loopback
// port (it writes the port to <dir>/port), secured as TestSecurity says.
// Subclasses say how to probe it.
class ServerProcess {
 public:
  // `binary` relative to DASH_BIN_ROOT. `dir` holds the port file and
  // <log_name> (appended across restarts); data goes where `args` say.
  ServerProcess(std::string binary, std::string dir, std::vector<std::string> args,
                std::string log_name, std::string kind);
  virtual ~ServerProcess();

  // Starts the process and waits until Ready() holds. The first start picks a
  // free port; a restart listens on the same one again, as a restarted server
  // keeps its address.
  absl::Status Start(absl::Duration timeout = absl::Seconds(30));
  // SIGKILL, no chance to flush anything.
  void Kill();
  // SIGTERM and wait for a clean exit.
  absl::Status Stop();
  absl::Status Restart() {
    Kill();
    return Start();
  }
  bool Running() { return process_ != nullptr && process_->Running(); }
  pid_t pid() const { return process_ == nullptr ? 0 : process_->pid(); }

  const std::string& address() const { return address_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  const std::string& dir() const { return dir_; }
  std::string log_path() const { return dir_ + "/" + log_name_; }
  // The HTTP port of a process started with HttpArgs(dir()); 0 when none.
  int http_port() const;

 protected:
  // True once the server answers; called repeatedly after the port is known.
  virtual bool Ready();

 private:
  const std::string binary_;
  const std::string dir_;
  const std::vector<std::string> args_;
  const std::string log_name_;
  const std::string kind_;  // "node", "router", "controlplane".
  std::unique_ptr<Process> process_;
  std::string address_;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
};

// A loopback port nothing listens on now (bound to port 0, then released):
// for a process the test starts itself, or for an address that must refuse.
int UnusedPort();

// The flags that give a server in `dir` an HTTP port on a free loopback port,
// written to <dir>/http_port (ServerProcess::http_port).
std::vector<std::string> HttpArgs(const std::string& dir);

// A dash-node with its data in <dir>/data; ready when it answers GetNodeInfo.
class NodeProcess : public ServerProcess {
 public:
  NodeProcess(std::string dir, std::vector<std::string> extra_args = {});

 protected:
  bool Ready() override;
};

// A dash-controlplane with its table in <dir>/data; ready when it answers
// GetPlacement.
class ControlPlaneProcess : public ServerProcess {
 public:
  ControlPlaneProcess(std::string dir, std::vector<std::string> extra_args = {});

 protected:
  bool Ready() override;
};

// A dash-router; ready when its port accepts connections.
class RouterProcess : public ServerProcess {
 public:
  RouterProcess(std::string dir, std::vector<std::string> extra_args = {});
};

// Runs a command to completion (for CLI tests); returns its exit code and
// captured stdout. stderr goes to `stderr_path` when given.
struct CommandResult {
  int exit_code = -1;
  std::string out;
};
CommandResult RunCommand(const std::string& binary, const std::vector<std::string>& args,
                         const std::string& stdin_text = "", const std::string& stderr_path = "");

// Stops and joins a test's threads on every way out of its scope, an
// ASSERT's early return included: a joinable std::thread destroyed
// terminates the test binary, and its server processes outlive it.
class JoinOnExit {
 public:
  JoinOnExit(std::atomic<bool>* stop, std::vector<std::thread>* threads)
      : stop_(stop), threads_(threads) {}
  JoinOnExit(std::atomic<bool>* stop, std::thread* thread) : stop_(stop), thread_(thread) {}
  JoinOnExit(const JoinOnExit&) = delete;
  JoinOnExit& operator=(const JoinOnExit&) = delete;
  ~JoinOnExit() {
    stop_->store(true);
    if (threads_ != nullptr) {
      for (std::thread& t : *threads_) {
        if (t.joinable()) t.join();
      }
    }
    if (thread_ != nullptr && thread_->joinable()) thread_->join();
  }

 private:
  std::atomic<bool>* const stop_;
  std::vector<std::thread>* const threads_ = nullptr;
  std::thread* const thread_ = nullptr;
};

}  // namespace dash::testing

#endif  // DASH_TESTS_HARNESS_PROCESS_H_
