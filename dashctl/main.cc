// dashctl: the DASH admin and data command line.
#include <cstdlib>
#include <functional>

#include "CLI/CLI.hpp"
#include "dashctl/common.h"

int main(int argc, char** argv) {
  CLI::App app{"dashctl: DASH admin and data CLI"};
  app.require_subcommand(1);
  // Global options may also follow the subcommand: `dashctl placement show --json`.
  app.fallthrough();
  dash::ctl::GlobalOptions g;
  if (const char* env = std::getenv("DASH_ADDR")) g.addr = env;
  if (const char* env = std::getenv("DASH_CONTROLPLANE")) g.controlplane = env;
  app.add_option("--addr", g.addr, "Node or router address host:port (env DASH_ADDR)")
      ->capture_default_str();
  app.add_option("--controlplane", g.controlplane,
                 "Control plane address host:port (env DASH_CONTROLPLANE)")
      ->capture_default_str();
  app.add_option("--timeout", g.timeout_s, "Per-call deadline in seconds")->capture_default_str();
  app.add_flag("--json", g.json, "Machine output: the response as JSON");
  app.add_option("--read-preference", g.read_preference,
                 "Reads through a router (get, list, query): leader-only, follower-preferred or "
                 "any-healthy")
      ->check(CLI::IsMember({"leader-only", "follower-preferred", "any-healthy"}))
      ->capture_default_str();
  app.add_option("--token-file", g.token_file,
                 "File holding the bearer token sent with every call (env DASH_TOKEN_FILE; "
                 "default <config>/token when it exists, config = $DASH_CONFIG_DIR or "
                 "~/.config/dash)");
  app.add_option("--tls-ca", g.tls_ca,
                 "PEM certificate of the CA that issued the servers' certificates: connect over "
                 "TLS (env DASH_TLS_CA; default <config>/ca.pem when it exists)");
  app.add_flag("--plaintext", g.plaintext,
               "Connect without TLS and send no token (servers run with --insecure_no_auth)");
  std::function<int()> run;
  dash::ctl::AddDataCommands(app, g, &run);
  dash::ctl::AddQueryCommands(app, g, &run);
  dash::ctl::AddConvertCommands(app, &run);
  dash::ctl::AddPlacementCommands(app, g, &run);
  dash::ctl::AddVerifyCommand(app, g, &run);
  dash::ctl::AddTokenCommands(app, &run);
  dash::ctl::AddHealthCommand(app, g, &run);
  dash::ctl::AddBackupCommands(app, g, &run);
  dash::ctl::AddRestoreCommands(app, g, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : dash::ctl::kUsage;
  }
  dash::ctl::ResolveCredentials(g);
  return run ? run() : dash::ctl::kUsage;
}
