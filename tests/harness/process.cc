#include "tests/harness/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"

namespace dash::testing {

std::string BinaryPath(const std::string& relative) {
  const char* root = std::getenv("DASH_BIN_ROOT");
  return absl::StrCat(root != nullptr && *root ? root : ".", "/", relative);
}

absl::Status PollUntil(const std::function<bool()>& condition, absl::Duration timeout,
                       const std::string& what, absl::Duration interval) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out after ", absl::FormatDuration(timeout), " waiting for ", what));
    }
    absl::SleepFor(interval);
  }
  return absl::OkStatus();
}

TestDir::TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name =
      info != nullptr ? absl::StrCat(info->test_suite_name(), ".", info->name()) : "test";
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  path_ = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/dash-", name, "-", getpid());
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TestDir::~TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info != nullptr && info->result()->Failed()) {
    fprintf(stderr, "[harness] test failed: logs and data kept in %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

absl::StatusOr<std::unique_ptr<Process>> Process::Start(const std::string& binary,
                                                        const std::vector<std::string>& args,
                                                        const std::string& log_path) {
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(binary, " is not an executable (set DASH_BIN_ROOT)"));
  }
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", log_path));
  std::vector<std::string> argv_storage{binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {  // Child: only async-signal-safe calls until exec.
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  return std::unique_ptr<Process>(new Process(pid));
}

Process::~Process() {
  if (Running()) Signal(SIGKILL);
  Wait();
}

bool Process::Running() {
  if (reaped_) return false;
  const pid_t r = waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

void Process::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

int Process::Wait() {
  if (!reaped_) {
    while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  return status_;
}

TestSecurity::TestSecurity() {
  const char* insecure = std::getenv("DASH_TEST_INSECURE");
  secure_ = insecure == nullptr || std::string(insecure) != "1";
  if (!secure_) {
    // dashctl must not pick up a developer's own credentials.
    setenv("DASH_CONFIG_DIR", "/nonexistent/dash-test-config", 1);
    return;
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  dir_ = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/dash-test-tls-", getpid());
  std::filesystem::remove_all(dir_);
  const std::string script = SourcePath("deploy/tls/make-certs.sh");
  CommandResult made = RunCommand("/bin/bash", {script, dir_, "node", "router", "controlplane"});
  if (made.exit_code != 0) {
    fprintf(stderr, "[harness] %s failed (exit %d): cannot secure the test cluster\n",
            script.c_str(), made.exit_code);
    std::abort();
  }
  absl::StatusOr<jwt::TokenKeys> keys = jwt::TokenKeys::FromFile(dir_ + "/auth-keys.json");
  absl::StatusOr<std::string> ca = ReadSmallFile(dir_ + "/ca.pem");
  absl::StatusOr<std::string> cert = ReadSmallFile(dir_ + "/node.pem");
  absl::StatusOr<std::string> key = ReadSmallFile(dir_ + "/node.key");
  if (!keys.ok() || !ca.ok() || !cert.ok() || !key.ok()) {
    fprintf(stderr, "[harness] %s holds no usable credentials\n", dir_.c_str());
    std::abort();
  }
  keys_ = std::make_unique<jwt::TokenKeys>(*std::move(keys));
  member_.ca_pem = *std::move(ca);
  member_.cert_pem = *std::move(cert);
  member_.key_pem = *std::move(key);
  member_.token =
      Mint({"*"}, {jwt::Role::kRead, jwt::Role::kWrite, jwt::Role::kAdmin}, absl::Hours(24));
  const std::string token_file = dir_ + "/admin.token";
  std::ofstream(token_file) << member_.token << "\n";
  setenv("DASH_TLS_CA", (dir_ + "/ca.pem").c_str(), 1);
  setenv("DASH_TOKEN_FILE", token_file.c_str(), 1);
}

const TestSecurity& TestSecurity::Get() {
  static const TestSecurity* const kSecurity = [] {
    auto* s = new TestSecurity();
    // Servers read their files at start only: the directory may go at exit.
    if (s->secure()) {
      std::atexit([] {
        std::error_code ec;
        std::filesystem::remove_all(Get().dir(), ec);
      });
    }
    return s;
  }();
  return *kSecurity;
}

std::vector<std::string> TestSecurity::ServerArgs(const std::string& kind) const {
  if (!secure_) return {"--insecure_no_auth"};
  return {"--auth_key_file=" + dir_ + "/auth-keys.json", "--tls_ca=" + dir_ + "/ca.pem",
          "--tls_cert=" + dir_ + "/" + kind + ".pem", "--tls_key=" + dir_ + "/" + kind + ".key"};
}

std::shared_ptr<const Security> TestSecurity::MemberSecurity() const {
  if (!secure_) return Security::Insecure();
  absl::StatusOr<std::shared_ptr<const Security>> s =
      Security::Create(*keys_, TlsFiles{dir_ + "/ca.pem", dir_ + "/node.pem", dir_ + "/node.key"});
  if (!s.ok()) {
    fprintf(stderr, "[harness] %s\n", s.status().ToString().c_str());
    std::abort();
  }
  return *std::move(s);
}

std::string TestSecurity::Mint(const std::vector<std::string>& tenants,
                               const std::vector<jwt::Role>& roles, absl::Duration ttl) const {
  jwt::Claims claims;
  claims.subject = "test";
  claims.tenants = tenants;
  claims.roles = roles;
  claims.issued_at = absl::Now();
  claims.expires = claims.issued_at + ttl;
  absl::StatusOr<std::string> token = keys_->Mint(keys_->key_ids().back(), claims);
  return token.ok() ? *token : std::string();
}

std::shared_ptr<grpc::Channel> MemberChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Empty credentials (plaintext) when the harness runs insecure.
  return *OpenChannel(address, TestSecurity::Get().member(), args);
}

namespace {
std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
}  // namespace

ServerProcess::ServerProcess(std::string binary, std::string dir, std::vector<std::string> args,
                             std::string log_name, std::string kind)
    : binary_(std::move(binary)),
      dir_(std::move(dir)),
      args_(std::move(args)),
      log_name_(std::move(log_name)),
      kind_(std::move(kind)) {
  std::filesystem::create_directories(dir_);
}

ServerProcess::~ServerProcess() { Kill(); }

int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 1;  // Nothing listens on port 1 either.
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string SourcePath(const std::string& relative) {
#ifdef DASH_SOURCE_DIR
  return absl::StrCat(DASH_SOURCE_DIR, "/", relative);
#else
  return relative;  // Bazel: the runfiles root.
#endif
}

std::vector<std::string> HttpArgs(const std::string& dir) {
  return {"--http_listen=127.0.0.1:0", "--http_port_file=" + dir + "/http_port"};
}

int ServerProcess::http_port() const {
  // Written just after the gRPC port: wait a little for it.
  int port = 0;
  (void)PollUntil(
      [&] {
        std::ifstream in(dir_ + "/http_port");
        return static_cast<bool>(in >> port);
      },
      absl::Seconds(10), "the HTTP port file");
  return port;
}

bool ServerProcess::Ready() {
  return channel_->WaitForConnected(std::chrono::system_clock::now() +
                                    std::chrono::milliseconds(500));
}

absl::Status ServerProcess::Start(absl::Duration timeout) {
  const std::string port_file = dir_ + "/port";
  std::filesystem::remove(port_file);
  std::filesystem::remove(dir_ + "/http_port");
  std::vector<std::string> args = {absl::StrCat("--listen=127.0.0.1:", port_),
                                   "--port_file=" + port_file};
  const std::vector<std::string> security = TestSecurity::Get().ServerArgs(kind_);
  args.insert(args.end(), security.begin(), security.end());
  args.insert(args.end(), args_.begin(), args_.end());
  auto proc = Process::Start(BinaryPath(binary_), args, log_path());
  if (!proc.ok()) return proc.status();
  process_ = std::move(*proc);

  int port = 0;
  absl::Status st = PollUntil(
      [&] {
        std::ifstream in(port_file);
        std::string line;
        return std::getline(in, line) &&
               absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &port) && port > 0;
      },
      timeout, "the port file of " + dir_);
  if (!st.ok()) {
    if (!process_->Running()) return absl::InternalError(binary_ + " exited; see " + log_path());
    return st;
  }
  const bool same_address = port == port_;
  port_ = port;
  address_ = absl::StrCat("127.0.0.1:", port);
  if (!same_address || channel_ == nullptr) {
    channel_ = MemberChannel(address_);
  }
  return PollUntil([&] { return Ready(); }, timeout, binary_ + " at " + address_ + " to answer");
}

void ServerProcess::Kill() {
  if (process_ != nullptr) {
    process_->Signal(SIGKILL);
    process_->Wait();
    process_.reset();
  }
}

absl::Status ServerProcess::Stop() {
  if (process_ == nullptr) return absl::OkStatus();
  process_->Signal(SIGTERM);
  const int status = process_->Wait();
  process_.reset();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(binary_, " did not exit cleanly: status ", status));
  }
  return absl::OkStatus();
}

NodeProcess::NodeProcess(std::string dir, std::vector<std::string> extra_args)
    : ServerProcess("node/dash-node", dir, Concat({"--data_dir=" + dir + "/data"}, extra_args),
                    "node.log", "node") {}

bool NodeProcess::Ready() {
  auto stub = v1::NodeAdmin::NewStub(channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  v1::NodeInfo info;
  return stub->GetNodeInfo(&ctx, v1::GetNodeInfoRequest(), &info).ok();
}

ControlPlaneProcess::ControlPlaneProcess(std::string dir, std::vector<std::string> extra_args)
    : ServerProcess("controlplane/dash-controlplane", dir,
                    Concat({"--data_dir=" + dir + "/data"}, extra_args), "controlplane.log",
                    "controlplane") {}

bool ControlPlaneProcess::Ready() {
  auto stub = v1::ControlPlane::NewStub(channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  v1::Placement placement;
  return stub->GetPlacement(&ctx, v1::GetPlacementRequest(), &placement).ok();
}

RouterProcess::RouterProcess(std::string dir, std::vector<std::string> extra_args)
    : ServerProcess("router/dash-router", dir, extra_args, "router.log", "router") {}

CommandResult RunCommand(const std::string& binary, const std::vector<std::string>& args,
                         const std::string& stdin_text, const std::string& stderr_path) {
  CommandResult result;
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  std::vector<std::string> argv_storage{binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int err_fd = stderr_path.empty() ? -1
                                         : open(stderr_path.c_str(),
                                                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (err_fd >= 0) close(err_fd);
  // The child's output is read after stdin is written; inputs in tests are
  // small enough to fit the pipe buffer.
  if (!stdin_text.empty()) {
    ssize_t ignored = write(in_pipe[1], stdin_text.data(), stdin_text.size());
    (void)ignored;
  }
  close(in_pipe[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(out_pipe[0], buf, sizeof(buf))) > 0) result.out.append(buf, n);
  close(out_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace dash::testing
