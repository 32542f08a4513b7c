#include "annals/projections/engine.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_set>

#include "annals/events/error.hpp"
#include "annals/projections/rebuild.hpp"
#include "annals/store/purge.hpp"

namespace annals {

namespace {

bool handles(const std::vector<std::string>& types, const std::string& type) {
  return types.empty() || std::find(types.begin(), types.end(), type) != types.end();
}

ProjectionCheckpoint current_checkpoint(SqlSession& sql, const Projection& projection) {
  if (auto cp = read_checkpoint(sql, projection.name())) return *cp;
  return ProjectionCheckpoint{projection.name(), projection.version(), 0, 0, {}};
}

// The projection's checkpoint, which prepare_projection (or a rebuild, or attaching it) made
// with its tables. Without one there are no tables to apply to: say so rather than letting the
// first statement fail with "no such table".
ProjectionCheckpoint prepared_checkpoint(SqlSession& sql, const Projection& projection,
                                         std::string_view operation) {
  std::optional<ProjectionCheckpoint> cp;
  if (sql.table_exists("annals_projections")) cp = read_checkpoint(sql, projection.name());
  if (!cp) {
    throw InvalidArgument(std::string(operation) + " " + projection.name() +
                          ": the projection has no checkpoint and no tables in this store;"
                          " call prepare_projection (or rebuild) first");
  }
  return *cp;
}

void require_version(const ProjectionCheckpoint& cp, const Projection& projection) {
  if (cp.version != projection.version()) {
    throw InvalidArgument("projection " + projection.name() +
                          ": its tables were written by version " + std::to_string(cp.version) +
                          ", the code is version " + std::to_string(projection.version()) +
                          "; rebuild it first");
  }
}

// Runs projections inside appends. One per attach call; the store keeps it alive.
// With group commit several appends share a transaction and one of them can be rolled back to
// its savepoint while the others stay: a projection's committing() is therefore paired with
// exactly one committed() or rolled_back() for the same append, and rolled_back() is never
// sent for an append whose committing() did not run (it would end another append's change
// early, e.g. a cache's in-flight count for a run both touch).
class InlineProjections final : public AppendHook {
 public:
  explicit InlineProjections(std::vector<std::shared_ptr<Projection>> projections)
      : projections_(std::move(projections)) {}

  void on_append(SqlSession& sql, const std::vector<RecordedEvent>& appended) override {
    if (appended.empty()) return;
    ProjectionContext ctx(sql);
    const std::uint64_t first = appended.front().position;
    for (const auto& projection : projections_) {
      forget_from(projection.get(), first);
      ProjectionCheckpoint cp = current_checkpoint(sql, *projection);
      require_version(cp, *projection);
      if (cp.position >= first) {
        throw IntegrityError("projection " + projection->name() + " is at position " +
                             std::to_string(cp.position) + ", past the append at position " +
                             std::to_string(first));
      }
      // Events appended by store objects without this hook (other processes) come first.
      std::vector<RecordedEvent> caught_up;
      while (cp.position + 1 < first) {
        auto missed = read_events(sql, cp.position + 1,
                                  std::min<std::uint64_t>(first - cp.position - 1, 1000));
        // Past a purged gap the read can reach this append's own events: those come below.
        std::erase_if(missed, [first](const RecordedEvent& e) { return e.position >= first; });
        if (missed.empty()) break;
        cp = apply_events(*projection, ctx, cp, missed);
        caught_up.insert(caught_up.end(), std::make_move_iterator(missed.begin()),
                         std::make_move_iterator(missed.end()));
      }
      cp = apply_events(*projection, ctx, cp, appended);
      if (!caught_up.empty()) projection->committing(caught_up);
      projection->committing(appended);
      remember(projection.get(), first, std::move(caught_up));
    }
  }

  void on_rollback(const std::vector<RecordedEvent>& appended) noexcept override {
    const std::uint64_t first = appended.empty() ? 0 : appended.front().position;
    for (const auto& projection : projections_) {
      std::optional<std::vector<RecordedEvent>> missed = take(projection.get(), first);
      if (!missed) continue;  // committing() never ran for this append
      if (!missed->empty()) projection->rolled_back(*missed);
      projection->rolled_back(appended);
    }
  }

  void on_commit(const std::vector<RecordedEvent>& appended) noexcept override {
    const std::uint64_t first = appended.empty() ? 0 : appended.front().position;
    for (const auto& projection : projections_) {
      std::optional<std::vector<RecordedEvent>> missed = take(projection.get(), first);
      if (!missed) continue;
      // Listeners must hear of the events caught up in this append too (e.g. a cache).
      if (!missed->empty()) projection->committed(*missed);
      projection->committed(appended);
    }
  }

 private:
  using Key = std::pair<const Projection*, std::uint64_t>;  // projection, append's first position

  // An append at or after `first` that is still remembered never reached on_commit or
  // on_rollback (its store went away mid-append); this append now reuses its positions.
  void forget_from(const Projection* p, std::uint64_t first) {
    std::lock_guard lock(mutex_);
    std::erase_if(pending_,
                  [&](const auto& kv) { return kv.first.first == p && kv.first.second >= first; });
  }

  // committing() ran for this append: on_commit or on_rollback owes the matching call.
  void remember(const Projection* p, std::uint64_t first, std::vector<RecordedEvent> caught_up) {
    std::lock_guard lock(mutex_);
    pending_.insert_or_assign(Key{p, first}, std::move(caught_up));
  }

  // The events caught up for this append, or nullopt if committing() did not run for it.
  std::optional<std::vector<RecordedEvent>> take(const Projection* p, std::uint64_t first) {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(Key{p, first});
    if (it == pending_.end()) return std::nullopt;
    std::vector<RecordedEvent> out = std::move(it->second);
    pending_.erase(it);
    return out;
  }

  std::vector<std::shared_ptr<Projection>> projections_;
  std::mutex mutex_;
  // Appends whose committing() ran and whose committed()/rolled_back() is still owed, with the
  // events each caught up.
  std::map<Key, std::vector<RecordedEvent>> pending_;
};

}  // namespace

std::uint64_t replay_events(Projection& projection, ProjectionContext& ctx,
                            std::uint64_t after_position,
                            const std::vector<RecordedEvent>& events) {
  const std::vector<std::string> types = projection.handled_types();
  std::uint64_t position = after_position;
  for (const RecordedEvent& e : events) {
    if (e.position != position + 1 &&
        (e.position <= position || !purged_range(ctx.sql(), position + 1, e.position - 1))) {
      throw IntegrityError("projection " + projection.name() + " at position " +
                               std::to_string(position) + " was given the event at position " +
                               std::to_string(e.position) +
                               "; events must follow it with no gap a purge did not record",
                           position + 1);
    }
    if (handles(types, e.type)) projection.apply(e, ctx);
    position = e.position;
  }
  return position;
}

ProjectionCheckpoint apply_events(Projection& projection, ProjectionContext& ctx,
                                  const ProjectionCheckpoint& checkpoint,
                                  const std::vector<RecordedEvent>& events) {
  if (events.empty()) return checkpoint;
  ProjectionCheckpoint next = checkpoint;
  next.position = replay_events(projection, ctx, checkpoint.position, events);
  next.updated_at = now();
  write_checkpoint(ctx.sql(), next);
  return next;
}

ProjectionCheckpoint prepare_projection(SqlEventStore& store, Projection& projection) {
  ProjectionCheckpoint cp;
  store.write_transaction([&](SqlSession& sql) {
    ensure_checkpoint_table(sql);
    if (auto existing = read_checkpoint(sql, projection.name())) {
      // setup() ran when the tables were made (here or by a rebuild, whose indexes carry a
      // generation suffix): running it again would add a second copy of every index.
      cp = *existing;
      return;
    }
    ProjectionContext ctx(sql);
    projection.setup(ctx);
    cp = ProjectionCheckpoint{projection.name(), projection.version(), 0, 0, now()};
    write_checkpoint(sql, cp);
  });
  return cp;
}

bool live_tables_exist(SqlEventStore& store, const Projection& projection) {
  bool all = true;
  for (const ProjectionTable& table : projection.tables()) {
    try {
      store.read_transaction([&](SqlSession& sql) {
        (void)sql.query("SELECT 1 FROM " + table.name + " WHERE 1 = 0");
      });
    } catch (const StoreError& e) {
      if (e.transient()) throw;  // busy or I/O says nothing about the table
      all = false;               // dropped by hand: the log can make it again
    }
  }
  return all;
}

std::uint64_t catch_up(SqlEventStore& store, Projection& projection, std::size_t batch_size) {
  if (batch_size == 0) throw InvalidArgument("catch_up " + projection.name() + ": batch_size is 0");
  std::uint64_t applied = 0;
  for (;;) {
    std::vector<RecordedEvent> batch;
    bool marked = false;
    try {
      store.write_transaction([&](SqlSession& sql) {
        ProjectionCheckpoint cp = prepared_checkpoint(sql, projection, "catch_up");
        require_version(cp, projection);
        batch = read_events(sql, cp.position + 1, batch_size);
        ProjectionContext ctx(sql);
        apply_events(projection, ctx, cp, batch);
        if (!batch.empty()) {
          marked = true;
          projection.committing(batch);
        }
      });
    } catch (const StoreError& e) {
      if (marked) projection.rolled_back(batch);
      // Say which projection's batch failed: the store's message names only the transaction.
      throw StoreError("catch_up " + projection.name() + ": " + e.what(), e.transient());
    } catch (...) {
      if (marked) projection.rolled_back(batch);
      throw;
    }
    if (batch.empty()) return applied;
    applied += batch.size();
    projection.committed(batch);
    if (batch.size() < batch_size) return applied;
  }
}

void attach_inline_projections(SqlEventStore& store,
                               const std::vector<std::shared_ptr<Projection>>& projections) {
  std::unordered_set<std::string> names;
  for (const auto& p : projections) {
    if (!p) throw InvalidArgument("attach_inline_projections: a projection is null");
    if (!names.insert(p->name()).second) {
      throw InvalidArgument("attach_inline_projections: projection " + p->name() +
                            " is given twice");
    }
  }
  for (const auto& p : projections) {
    const ProjectionCheckpoint cp = prepare_projection(store, *p);
    if (cp.version != p->version() || !live_tables_exist(store, *p)) rebuild(store, *p);
    catch_up(store, *p);
  }
  store.add_append_hook(std::make_shared<InlineProjections>(projections));
}

}  // namespace annals
