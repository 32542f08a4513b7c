// The annals program: command-line parsing only (the one translation unit that includes CLI11,
// which is slow to compile). The commands themselves are in commands.cpp and demo_data.cpp.

#include <CLI/CLI.hpp>
#include <exception>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>

#include "args.hpp"
#include "commands.hpp"

namespace {

using namespace annals::cli;

// A whole number from min to max, read by parse_unsigned() (CLI11 alone would take "-1" as
// 2^64-1 and "010" as octal); hands CLI11 the canonical decimal text to convert.
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        try {
          text = std::to_string(parse_unsigned(text, "value", min, max));
          return {};
        } catch (const annals::InvalidArgument& e) {
          return e.what();
        }
      },
      std::to_string(min) + ".." + (max == UINT64_MAX ? std::string() : std::to_string(max)));
}

constexpr std::uint64_t kMax64 = UINT64_MAX;

void add_target(CLI::App& command, Target& target) {
  auto* db = command.add_option("--db", target.db, "SQLite database file of the store");
  auto* uri = command.add_option("--uri", target.uri,
                                 "store URI instead of --db, e.g. sqlite:/data/events.db");
  db->excludes(uri);
  command.add_flag("--json", target.json, "machine-readable output (JSON)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "annals: inspect, verify, replay, rebuild, export and import an annals event store.\n"
      "Exit codes: 0 success, 1 verification failed, 2 bad usage, 3 store error."};
  app.name("annals");
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every command");

  DemoArgs demo_args;
  RunsArgs runs_args;
  RebuildArgs rebuild_args;
  ReplayArgs replay_args;
  VerifyArgs verify_args;
  ExportArgs export_args;
  ImportArgs import_args;
  Target stats_target;
  std::function<int()> run;
  std::string command_name;

  auto* demo = app.add_subcommand(
      "demo", "write realistic workflow runs (several tenants and apps) and show a page of them");
  add_target(*demo, demo_args.target);
  demo->add_option("--runs", demo_args.runs, "how many runs to write")
      ->capture_default_str()
      ->transform(whole_number(1, 1000000));
  demo->add_option("--seed", demo_args.seed, "seed of the pseudo-random data")
      ->capture_default_str()
      ->transform(whole_number(0, kMax64));
  demo->add_option("--keys", demo_args.keys,
                   "keys file to add the demo key's hash to (default: <db>.keys with --db; "
                   "with --uri, no key unless given)");
  demo_args.program = argc > 0 && std::string_view(argv[0]).find('/') != std::string_view::npos
                          ? std::string(argv[0])
                          : std::string("annals");
  demo->callback([&] { run = [&] { return annals::cli::demo(demo_args, std::cout, std::cerr); }; });

  ServeArgs serve_args;
  auto* serve = app.add_subcommand(
      "serve", "serve the read API and the audit viewer over HTTP until SIGINT/SIGTERM");
  serve->add_option("--db", serve_args.target.db, "SQLite database file of the store");
  serve->add_option("--uri", serve_args.target.uri,
                    "store URI instead of --db, e.g. sqlite:/data/events.db")
      ->excludes(serve->get_option("--db"));
  serve
      ->add_option("--listen", serve_args.listen,
                   "HOST:PORT to listen on, e.g. 127.0.0.1:8080 or [::1]:8080 (port 0: any free "
                   "port, printed)")
      ->required();
  serve->add_option("--keys", serve_args.keys, "keys file: '<tenant> <sha256 of key>' per line")
      ->required();
  serve->add_option("--threads", serve_args.threads, "server threads, 1..64")
      ->capture_default_str()
      ->transform(whole_number(1, 64));
  serve->callback(
      [&] { run = [&] { return annals::cli::serve(serve_args, std::cout, std::cerr); }; });

  KeysAddArgs keys_add_args;
  auto* keys = app.add_subcommand("keys", "manage the API keys of `annals serve`");
  keys->require_subcommand(1);
  auto* keys_add = keys->add_subcommand(
      "add", "make a new key for a tenant, add its hash to the keys file and print the key once");
  keys_add->add_option("--keys", keys_add_args.keys, "keys file (created, mode 0600, if missing)")
      ->required();
  keys_add->add_option("--tenant", keys_add_args.tenant, "tenant id the key belongs to")
      ->required();
  keys_add->callback(
      [&] { run = [&] { return annals::cli::keys_add(keys_add_args, std::cout, std::cerr); }; });

  auto* stats = app.add_subcommand(
      "stats", "events, streams, head position and hash, projection checkpoints and lag, size");
  add_target(*stats, stats_target);
  stats->callback(
      [&] { run = [&] { return annals::cli::stats(stats_target, std::cout, std::cerr); }; });

  auto* runs = app.add_subcommand("runs", "a page of workflow runs, newest first");
  add_target(*runs, runs_args.target);
  runs->add_option("--tenant", runs_args.tenant, "tenant id")->required();
  runs->add_option("--app", runs_args.app, "app id")->required();
  runs->add_option("--triggered-from", runs_args.triggered_from, "trigger, e.g. app-run, debugging")
      ->capture_default_str();
  runs->add_option("--limit", runs_args.limit, "page size, 1..1000")
      ->capture_default_str()
      ->transform(whole_number(0, kMax64));  // the repository says why 0 or 5000 is refused
  runs->add_option("--last-id", runs_args.last_id, "continue after the run with this id");
  runs->callback([&] { run = [&] { return annals::cli::runs(runs_args, std::cout, std::cerr); }; });

  auto* rebuild = app.add_subcommand(
      "rebuild", "rebuild a projection's read tables from the log without downtime");
  add_target(*rebuild, rebuild_args.target);
  rebuild->add_option("--projection", rebuild_args.projection, "projection name")
      ->capture_default_str();
  rebuild->add_option("--batch-size", rebuild_args.batch_size, "events per replay transaction")
      ->capture_default_str()
      ->transform(whole_number(1, 1000000));
  rebuild->callback(
      [&] { run = [&] { return annals::cli::rebuild(rebuild_args, std::cout, std::cerr); }; });

  auto* replay = app.add_subcommand(
      "replay", "an aggregate's state at a log position or time, rebuilt from the log only");
  add_target(*replay, replay_args.target);
  replay
      ->add_option("--stream", replay_args.stream, "stream id, e.g. WorkflowRun-r-1 (or a run id)")
      ->required();
  auto* position = replay
                       ->add_option("--position", replay_args.position,
                                    "keep the stream's events at or before this log position")
                       ->transform(whole_number(1, kMax64));
  auto* as_of = replay->add_option(
      "--as-of", replay_args.as_of,
      "keep the events recorded at or before this time: ISO 8601 UTC "
      "(2026-11-21T09:30:00Z, 2026-11-21T09:30:00.123456Z) or integer microseconds");
  position->excludes(as_of);
  replay->callback([&] {
    if (!replay_args.position && !replay_args.as_of) {
      throw CLI::RequiredError("--position or --as-of");
    }
    run = [&] { return annals::cli::replay(replay_args, std::cout, std::cerr); };
  });

  auto* verify = app.add_subcommand(
      "verify", "recompute the log's hash chain; optionally write or check a checkpoint file");
  add_target(*verify, verify_args.target);
  verify->add_option("--checkpoint", verify_args.checkpoint,
                     "checkpoint file: written if missing, checked if present");
  verify->add_option("--key-file", verify_args.key_file,
                     "HMAC-SHA256 key to sign or check the checkpoint (trailing newline ignored)");
  verify->add_option("--archive", verify_args.archives,
                     "a purge archive to check against the log's record of its purge "
                     "(repeatable)");
  verify->callback(
      [&] { run = [&] { return annals::cli::verify(verify_args, std::cout, std::cerr); }; });

  auto* exp = app.add_subcommand("export", "write the log as JSON Lines, one event per line");
  add_target(*exp, export_args.target);
  exp->add_option("--output,-o", export_args.output, "output file (default: stdout)");
  exp->add_option("--from", export_args.from, "first log position to export")
      ->capture_default_str()
      ->transform(whole_number(1, kMax64));
  exp->callback(
      [&] { run = [&] { return annals::cli::export_events(export_args, std::cout, std::cerr); }; });

  auto* imp = app.add_subcommand(
      "import", "import an export into an empty store, checking the hash chain (all or nothing)");
  add_target(*imp, import_args.target);
  imp->add_option("--input,-i", import_args.input, "input file (default: stdin)");
  imp->callback(
      [&] { run = [&] { return annals::cli::import_events(import_args, std::cout, std::cerr); }; });

  PurgeArgs purge_args;
  auto* purge = app.add_subcommand(
      "purge", "move a tenant's runs created before a date out of the log into a verified archive");
  add_target(*purge, purge_args.target);
  purge->add_option("--tenant", purge_args.tenant, "tenant id")->required();
  purge
      ->add_option("--before", purge_args.before,
                   "purge runs created before this time (ISO 8601 UTC or microseconds)")
      ->required();
  purge
      ->add_option("--archive", purge_args.archive,
                   "archive file to write (JSON Lines; must not exist)")
      ->required();
  purge->add_option("--manifest", purge_args.manifest,
                    "manifest file (default: ARCHIVE.manifest.json; must not exist)");
  purge->callback(
      [&] { run = [&] { return annals::cli::purge(purge_args, std::cout, std::cerr); }; });

  std::ios::sync_with_stdio(false);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the error and a hint, as CLI11 does
    return code == 0 ? kExitOk : kExitUsage;
  }
  for (const CLI::App* sub : app.get_subcommands()) {
    command_name = sub->get_name();
    for (const CLI::App* inner : sub->get_subcommands()) command_name += " " + inner->get_name();
  }
  try {
    return run();
  } catch (...) {
    return report_error(command_name, std::current_exception(), std::cerr);
  }
}
