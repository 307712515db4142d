#include "common/serving.h"

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace dash {
namespace {

// What SetServing told each server's health service, which offers no getter.
struct ServerStatus {
  bool stopped = false;
  absl::flat_hash_map<std::string, bool> serving;
};

struct Statuses {
  absl::Mutex mu;
  absl::flat_hash_map<const grpc::Server*, ServerStatus> by_server ABSL_GUARDED_BY(mu);
};

Statuses& Known() {
  static Statuses* const statuses = new Statuses();
  return *statuses;
}

}  // namespace

void EnableHealthAndReflection() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
}

void SetServing(grpc::Server* server, const std::vector<std::string>& services, bool serving) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  Statuses& known = Known();
  absl::MutexLock lock(&known.mu);
  ServerStatus& status = known.by_server[server];
  if (status.stopped) return;
  for (const std::string& service : services) {
    health->SetServingStatus(service, serving);
    status.serving[service] = serving;
  }
}

bool IsServing(const grpc::Server* server, const std::string& service) {
  Statuses& known = Known();
  absl::MutexLock lock(&known.mu);
  auto it = known.by_server.find(server);
  if (it == known.by_server.end() || it->second.stopped) return false;
  auto status = it->second.serving.find(service);
  return status != it->second.serving.end() && status->second;
}

void StopServing(grpc::Server* server) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health != nullptr) health->Shutdown();
  Statuses& known = Known();
  absl::MutexLock lock(&known.mu);
  known.by_server[server].stopped = true;
}

void ForgetServer(const grpc::Server* server) {
  Statuses& known = Known();
  absl::MutexLock lock(&known.mu);
  known.by_server.erase(server);
}

}  // namespace dash
