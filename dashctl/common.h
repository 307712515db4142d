// Shared plumbing of dashctl's command groups: connection, JSON in/out, exit
// codes. Exit codes: 0 success, 1 the server refused or failed, 2 bad usage or
// input, 3 the server could not be reached.
#ifndef DASH_DASHCTL_COMMON_H_
#define DASH_DASHCTL_COMMON_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dash/v1/data.pb.h"
#include "dash/v1/placement.pb.h"
#include "google/protobuf/message.h"
#include "grpcpp/channel.h"

namespace dash::ctl {

enum ExitCode { kOk = 0, kServerError = 1, kUsage = 2, kUnreachable = 3 };

struct GlobalOptions {
  std::string addr = "127.0.0.1:7100";          // Node or router: the data commands.
  std::string controlplane = "127.0.0.1:7000";  // The placement commands.
  double timeout_s = 30;
  bool json = false;  // Machine output: response protos as JSON.
  // Reads through a router: which replica of each shard may answer.
  std::string read_preference = "leader-only";
  // Credentials (see ResolveCredentials): a bearer token file and the CA that
  // issued the servers' certificates; plaintext turns both off.
  std::string token_file;
  std::string tls_ca;
  bool plaintext = false;
};

// Where dashctl looks for credentials no flag or variable named:
// $DASH_CONFIG_DIR, else $XDG_CONFIG_HOME/dash, else ~/.config/dash (its
// files "token" and "ca.pem"; deploy/local/up.sh writes them).
std::string ConfigDir();
// Fills g.token_file and g.tls_ca from the environment (DASH_TOKEN_FILE,
// DASH_TLS_CA) or ConfigDir() when the command line left them empty.
void ResolveCredentials(GlobalOptions& g);

// The --read-preference value as the API's enum (validated by CLI11).
v1::ReadPreference ReadPreferenceOf(const GlobalOptions& g);

// A channel to g.addr (Connect) or to the control plane (ConnectControlPlane).
std::shared_ptr<grpc::Channel> Connect(const GlobalOptions& g);
std::shared_ptr<grpc::Channel> ConnectControlPlane(const GlobalOptions& g);
// Deadline for one call: --timeout, plus `extra` for calls that wait on the
// server side (e.g. a leadership transfer's own timeout).
void SetDeadline(grpc::ClientContext* ctx, const GlobalOptions& g,
                 std::chrono::milliseconds extra = std::chrono::milliseconds(0));

// Prints `status` as "dashctl: <code>: <message>" on stderr and maps it to an
// exit code: INVALID_ARGUMENT -> kUsage, UNAVAILABLE and DEADLINE_EXCEEDED ->
// kUnreachable, any other error -> kServerError.
int Fail(const absl::Status& status);

// Proto <-> JSON with the API's field names (snake_case).
std::string ToJson(const google::protobuf::Message& m, bool pretty);
absl::Status FromJson(const std::string& json, google::protobuf::Message* m);

// Each command group adds its subcommands; `run` receives the action to
// execute once CLI11 has parsed the command line.
void AddDataCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run);
void AddConvertCommands(CLI::App& app, std::function<int()>* run);
void AddVerifyCommand(CLI::App& app, GlobalOptions& g, std::function<int()>* run);
void AddQueryCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run);
// placement show|watch, nodes, failover, promote, transfer, drain, replicas
// add|remove|move: the control plane's admin API (dash.v1.ControlPlane).
void AddPlacementCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run);
// health: the standard gRPC health check of any process.
void AddHealthCommand(CLI::App& app, GlobalOptions& g, std::function<int()>* run);
// backup create|list|verify|delete|prune: cluster backups in a directory.
void AddBackupCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run);
// backup archive (after AddBackupCommands), and restore: log archiving and
// point-in-time restore plans.
void AddRestoreCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run);
// The control plane's placement of a created cluster (FAILED_PRECONDITION
// when it is not created yet).
absl::StatusOr<v1::Placement> ReadPlacement(const GlobalOptions& g);
// token mint: bearer tokens for operators and applications.
void AddTokenCommands(CLI::App& app, std::function<int()>* run);
// A channel to any address (e.g. a node `verify` reaches directly), with the
// same credentials as Connect.
std::shared_ptr<grpc::Channel> ConnectTo(const GlobalOptions& g, const std::string& addr);

}  // namespace dash::ctl

#endif  // DASH_DASHCTL_COMMON_H_
