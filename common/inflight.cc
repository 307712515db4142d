#include "common/inflight.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dash {
namespace {

class CountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit CountingInterceptor(InflightCalls* calls) : calls_(calls) { calls_->Enter(); }
  ~CountingInterceptor() override { calls_->Exit(); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  InflightCalls* const calls_;
};

class CountingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CountingFactory(InflightCalls* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // Health watches and reflection streams stay open as long as their
    // client likes and have no work to finish: a stop does not wait for them.
    const absl::string_view method = info->method() != nullptr ? info->method() : "";
    if (absl::StartsWith(method, "/grpc.health.v1.Health/") ||
        absl::StartsWith(method, "/grpc.reflection.")) {
      return nullptr;
    }
    return new CountingInterceptor(calls_);
  }

 private:
  InflightCalls* const calls_;
};

bool IsZero(const int* n) { return *n == 0; }

class ParseErrorInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ParseErrorInterceptor(std::string method) : method_(std::move(method)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status st = methods->GetSendStatus();
      // Our handlers never answer these codes without a message; gRPC does
      // when the request did not deserialize.
      if ((st.error_code() == grpc::StatusCode::INTERNAL ||
           st.error_code() == grpc::StatusCode::UNIMPLEMENTED) &&
          st.error_message().empty()) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("request: cannot be parsed as the request of ", method_,
                         " (malformed protobuf, or a string field that is not valid UTF-8)")));
      }
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
};

class ParseErrorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ParseErrorInterceptor(info->method() != nullptr ? info->method() : "?");
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InflightCalls::Factory() {
  return std::make_unique<CountingFactory>(this);
}

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
InflightCalls::Factories() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(Factory());
  out.push_back(ParseErrorsAsInvalidArgument());
  return out;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ParseErrorsAsInvalidArgument() {
  return std::make_unique<ParseErrorFactory>();
}

int InflightCalls::count() const {
  absl::MutexLock l(&mu_);
  return count_;
}

bool InflightCalls::WaitUntilIdle(absl::Time deadline) const {
  absl::MutexLock l(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(IsZero, &count_), deadline);
}

void InflightCalls::Enter() {
  absl::MutexLock l(&mu_);
  ++count_;
}

void InflightCalls::Exit() {
  absl::MutexLock l(&mu_);
  --count_;
}

}  // namespace dash
