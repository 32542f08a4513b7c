#include "annals/projections/rebuild.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <type_traits>
#include <unordered_set>
#include <variant>

#include "annals/events/error.hpp"
#include "annals/projections/checkpoint.hpp"
#include "annals/projections/engine.hpp"

namespace annals {

namespace {

// annals_rebuilds: who is rebuilding what. A row exists only while a rebuild runs (or after one
// crashed); its token is checked in every transaction so that when a second rebuild of the same
// projection starts (another process deploying the same version bump), the first one notices and
// gives up instead of writing into shadow tables the second one recreated.
void ensure_claims_table(SqlSession& sql) {
  // PostgreSQL's INTEGER is 32 bits: positions and microsecond times need BIGINT there.
  const std::string integer = sql.dialect() == "postgresql" ? "BIGINT" : "INTEGER";
  sql.execute_script(
      "CREATE TABLE IF NOT EXISTS annals_rebuilds ("
      " name TEXT PRIMARY KEY,"
      " token TEXT NOT NULL,"
      " generation " +
      integer +
      " NOT NULL,"
      " position " +
      integer +
      " NOT NULL,"
      " started_at " +
      integer +
      " NOT NULL,"
      " updated_at " +
      integer + " NOT NULL)");
}

std::optional<std::string> claim_token(SqlSession& sql, const std::string& name) {
  const auto rows = sql.query("SELECT token FROM annals_rebuilds WHERE name = $1", {name});
  if (rows.empty()) return std::nullopt;
  return rows.front().text(0);
}

void require_claim(SqlSession& sql, const std::string& name, const std::string& token) {
  if (claim_token(sql, name) != token) {
    throw ConcurrencyError("rebuild of " + name +
                           ": another rebuild of it started meanwhile and took over");
  }
}

std::string quote(std::string_view identifier) {
  std::string out = "\"";
  for (char c : identifier) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

void drop_tables(SqlSession& sql, const std::vector<ProjectionTable>& tables,
                 const std::string& suffix) {
  for (const ProjectionTable& t : tables) {
    sql.execute_script("DROP TABLE IF EXISTS " + quote(t.name + suffix));
  }
}

// Applies the events from `position` + 1 on to the shadow tables, up to max_count of them;
// returns how many there were. The caller's transaction is the batch.
std::size_t replay_batch(SqlSession& sql, Projection& projection, const std::string& suffix,
                         std::uint64_t& position, std::size_t max_count) {
  const std::vector<RecordedEvent> events = read_events(sql, position + 1, max_count);
  ProjectionContext shadow(sql, suffix);
  position = replay_events(projection, shadow, position, events);
  return events.size();
}

// The column names of a table in declaration order; empty if there is no such table.
std::vector<std::string> columns_of(SqlSession& sql, const std::string& table) {
  std::vector<SqlRow> rows;
  if (sql.dialect() == "sqlite") {
    rows = sql.query("SELECT name FROM pragma_table_info($1) ORDER BY cid", {table});
  } else {
    rows = sql.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = $1 ORDER BY ordinal_position",
        {table});
  }
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const SqlRow& row : rows) out.push_back(row.text(0));
  return out;
}

// The columns of a freshly set up shadow table, checked against what tables() says of it.
std::vector<std::string> shadow_columns_of(SqlSession& sql, const ProjectionTable& table,
                                           const std::string& shadow_name) {
  std::vector<std::string> columns = columns_of(sql, shadow_name);
  if (columns.empty()) {
    throw InvalidArgument("rebuild: setup() did not create " + shadow_name + ", the shadow of " +
                          table.name + "; a projection must name its tables through ctx.table()");
  }
  for (const std::string& key : table.key_columns) {
    if (std::find(columns.begin(), columns.end(), key) == columns.end()) {
      throw InvalidArgument("rebuild: key column " + key + " of " + table.name +
                            " is not a column of the table");
    }
  }
  return columns;
}

// A 64-bit checksum over a self-delimiting encoding of the column names and then every value of
// every row in key order, so equal checksums mean equal columns and contents. FNV-1a's step
// taken a little-endian 64-bit word at a time (a byte at a time, its multiplication chain was
// most of what comparing the tables cost outside SQLite), with a shift folding the high bits
// back down. Every step is a bijection of the state, so one changed word always changes the
// result.
class Checksum {
 public:
  void add_name(std::string_view name) {
    add_word('C');
    add_text(name);
  }
  void add_row(const SqlRow& row) {
    add_word('R');
    for (std::size_t i = 0; i < row.size(); ++i) add_value(row[i]);
  }
  [[nodiscard]] std::string hex() const {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i)
      out[static_cast<std::size_t>(i)] = kDigits[(hash_ >> (4 * (15 - i))) & 0xf];
    return out;
  }

 private:
  void add_value(const SqlValue& v) {
    std::visit(
        [&](const auto& x) {
          using V = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<V, std::nullptr_t>) {
            add_word('N');
          } else if constexpr (std::is_same_v<V, std::int64_t>) {
            add_word('I');
            add_word(static_cast<std::uint64_t>(x));
          } else if constexpr (std::is_same_v<V, double>) {
            add_word('F');
            add_word(std::bit_cast<std::uint64_t>(x));
          } else if constexpr (std::is_same_v<V, SqlBlob>) {
            add_word('B');
            add_text(x.bytes);
          } else {
            add_word('T');
            add_text(x);
          }
        },
        v);
  }
  void add_text(std::string_view s) {
    add_word(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t left = s.size();
    for (; left >= 8; left -= 8, p += 8) add_word(load_le(p, 8));
    if (left > 0) add_word(load_le(p, left));  // zero-padded; the length came first
  }
  static std::uint64_t load_le(const unsigned char* p, std::size_t n) {
    std::uint64_t w = 0;
    for (std::size_t i = 0; i < n; ++i) w |= std::uint64_t{p[i]} << (8 * i);
    return w;
  }
  void add_word(std::uint64_t w) {
    hash_ ^= w;
    hash_ *= 1099511628211ULL;
    hash_ ^= hash_ >> 29;
  }

  std::uint64_t hash_ = 14695981039346656037ULL;
};

int compare_values(const SqlValue& a, const SqlValue& b) {
  auto rank = [](const SqlValue& v) {
    if (std::holds_alternative<std::nullptr_t>(v)) return 0;
    if (std::holds_alternative<std::string>(v)) return 2;
    if (std::holds_alternative<SqlBlob>(v)) return 3;
    return 1;
  };
  const int ra = rank(a), rb = rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  if (ra == 0) return 0;
  if (ra >= 2) {
    const int c = ra == 2 ? std::get<std::string>(a).compare(std::get<std::string>(b))
                          : std::get<SqlBlob>(a).bytes.compare(std::get<SqlBlob>(b).bytes);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (std::holds_alternative<std::int64_t>(a) && std::holds_alternative<std::int64_t>(b)) {
    const auto x = std::get<std::int64_t>(a), y = std::get<std::int64_t>(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  auto as_double = [](const SqlValue& v) {
    return std::holds_alternative<double>(v) ? std::get<double>(v)
                                             : static_cast<double>(std::get<std::int64_t>(v));
  };
  const double x = as_double(a), y = as_double(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

std::string render_value(const SqlValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using V = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<V, std::nullptr_t>) {
          return "NULL";
        } else if constexpr (std::is_same_v<V, std::string>) {
          return x;
        } else if constexpr (std::is_same_v<V, SqlBlob>) {
          return x.bytes;
        } else {
          return std::to_string(x);
        }
      },
      v);
}

// One side of a comparison: a cursor over a table's rows in key order, counted and summed as
// it goes.
struct Side {
  std::unique_ptr<SqlCursor> cursor;
  SqlRow row;
  bool has_row = false;
  std::uint64_t rows = 0;
  Checksum checksum;

  void advance() {
    has_row = cursor && cursor->next(row);
    if (has_row) {
      ++rows;
      checksum.add_row(row);
    }
  }
};

// Compares a live table with its shadow in one pass over each (two cursors open at once, rows
// never held beyond the current pair).
TableComparison compare_table(SqlSession& sql, const ProjectionTable& table,
                              const std::string& shadow_name, std::size_t max_differences) {
  TableComparison out;
  out.table = table.name;
  const std::vector<std::string> live_columns = columns_of(sql, table.name);
  const std::vector<std::string> shadow_columns = shadow_columns_of(sql, table, shadow_name);
  const bool live_exists = !live_columns.empty();
  const bool same_columns = !live_exists || live_columns == shadow_columns;

  const std::vector<std::string>& keys =
      table.key_columns.empty() ? shadow_columns : table.key_columns;
  std::vector<std::size_t> key_index;
  for (const std::string& key : keys) {
    key_index.push_back(static_cast<std::size_t>(
        std::find(shadow_columns.begin(), shadow_columns.end(), key) - shadow_columns.begin()));
  }
  const bool sqlite = sql.dialect() == "sqlite";
  auto select = [&](const std::vector<std::string>& columns, const std::string& from,
                    bool ordered) {
    std::string s = "SELECT ";
    for (std::size_t i = 0; i < columns.size(); ++i) s += (i ? ", " : "") + quote(columns[i]);
    s += " FROM " + quote(from);
    if (ordered) {
      s += " ORDER BY ";
      for (std::size_t i = 0; i < keys.size(); ++i) {
        // BINARY: the order compare_values() walks in, whatever collation a column declares.
        s += (i ? ", " : "") + quote(keys[i]) + (sqlite ? " COLLATE BINARY" : "");
      }
    }
    return s;
  };

  Side live, shadow;
  for (const std::string& c : live_columns) live.checksum.add_name(c);
  for (const std::string& c : shadow_columns) shadow.checksum.add_name(c);

  if (same_columns) {
    if (live_exists) live.cursor = sql.open_cursor(select(live_columns, table.name, true));
    shadow.cursor = sql.open_cursor(select(shadow_columns, shadow_name, true));
    live.advance();
    shadow.advance();
    auto note = [&](const SqlRow& row, const char* what) {
      if (out.first_differences.size() >= max_differences) return;
      std::string key;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        key += (i ? ", " : "") + keys[i] + "=" + render_value(row[key_index[i]]);
      }
      out.first_differences.push_back(key + ": " + what);
    };
    while (live.has_row || shadow.has_row) {
      int order = 0;
      if (!live.has_row) {
        order = 1;
      } else if (!shadow.has_row) {
        order = -1;
      } else {
        for (std::size_t k : key_index) {
          order = compare_values(live.row[k], shadow.row[k]);
          if (order != 0) break;
        }
      }
      if (order < 0) {
        note(live.row, "only in live");
        live.advance();
      } else if (order > 0) {
        note(shadow.row, "only in shadow");
        shadow.advance();
      } else {
        if (live.row != shadow.row) note(live.row, "differs");
        live.advance();
        shadow.advance();
      }
    }
  } else {
    // Another version of the projection wrote the live table with other columns: rows cannot
    // be matched, only counted and summed.
    const bool live_has_keys = std::all_of(keys.begin(), keys.end(), [&](const std::string& k) {
      return std::find(live_columns.begin(), live_columns.end(), k) != live_columns.end();
    });
    for (Side* side : {&live, &shadow}) {
      const bool is_live = side == &live;
      side->cursor =
          sql.open_cursor(select(is_live ? live_columns : shadow_columns,
                                 is_live ? table.name : shadow_name, !is_live || live_has_keys));
      do side->advance();
      while (side->has_row);
      side->cursor.reset();
    }
    if (max_differences > 0) {
      auto list = [](const std::vector<std::string>& columns) {
        std::string s;
        for (std::size_t i = 0; i < columns.size(); ++i) s += (i ? ", " : "") + columns[i];
        return s;
      };
      out.first_differences.push_back("columns differ: live (" + list(live_columns) +
                                      "), shadow (" + list(shadow_columns) + ")");
    }
  }
  out.live_rows = live.rows;
  out.shadow_rows = shadow.rows;
  out.live_checksum = live.checksum.hex();
  out.shadow_checksum = shadow.checksum.hex();
  return out;
}

// SQLite's ALTER TABLE ... RENAME rewrites views and triggers that name the renamed table and
// fails if any view names a table that is missing — as a host application's view over the live
// table is, between DROP and RENAME. The legacy behaviour renames the table only, so such a
// view simply reads the new table afterwards.
class LegacyAlterTable {
 public:
  explicit LegacyAlterTable(SqlSession& sql) : sql_(sql) {
    if (sql_.dialect() != "sqlite") return;
    const auto rows = sql_.query("PRAGMA legacy_alter_table");
    previous_ = !rows.empty() && rows.front().integer(0) != 0;
    sql_.execute_script("PRAGMA legacy_alter_table = ON");
    active_ = true;
  }
  ~LegacyAlterTable() {
    if (!active_ || previous_) return;
    try {
      sql_.execute_script("PRAGMA legacy_alter_table = OFF");
    } catch (...) {  // the connection keeps the legacy behaviour; renames still work
    }
  }
  LegacyAlterTable(const LegacyAlterTable&) = delete;
  LegacyAlterTable& operator=(const LegacyAlterTable&) = delete;

 private:
  SqlSession& sql_;
  bool active_ = false;
  bool previous_ = false;
};

// PostgreSQL: what a table is, apart from its name, its indexes and its rows: each column's
// name, type and nullability, and its constraints. Two tables of one shape hold the same rows.
std::string pg_table_shape(SqlSession& sql, const std::string& table) {
  std::string shape;
  for (const SqlRow& row :
       sql.query("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
                 " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                 " JOIN pg_namespace n ON n.oid = c.relnamespace"
                 " WHERE n.nspname = current_schema() AND c.relname = $1 AND a.attnum > 0"
                 " AND NOT a.attisdropped ORDER BY a.attnum",
                 {table})) {
    shape += row.text(0) + " " + row.text(1) + (row.integer(2) != 0 ? " not null" : "") + ",";
  }
  shape += ";";
  for (const SqlRow& row : sql.query(
           "SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k"
           " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
           " WHERE n.nspname = current_schema() AND c.relname = $1 ORDER BY 1",
           {table})) {
    shape += row.text(0) + ";";
  }
  return shape;
}

// PostgreSQL: a table's indexes that no constraint owns, as (name, definition after its table).
std::vector<std::pair<std::string, std::string>> pg_plain_indexes(SqlSession& sql,
                                                                  const std::string& table) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const SqlRow& row :
       sql.query("SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique FROM pg_index x"
                 " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
                 " JOIN pg_namespace n ON n.oid = t.relnamespace"
                 " WHERE n.nspname = current_schema() AND t.relname = $1"
                 " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)"
                 " ORDER BY i.relname",
                 {table})) {
    const std::string def = row.text(1);
    const std::size_t using_at = def.find(" USING ");
    if (using_at == std::string::npos) {
      throw StoreError("rebuild: cannot read the definition of index " + row.text(0) + ": " + def,
                       false);
    }
    out.emplace_back(row.text(0), (row.integer(2) != 0 ? "UNIQUE " : "") + def.substr(using_at));
  }
  return out;
}

// Swaps a shadow table in on PostgreSQL. There a DROP and RENAME is not MVCC-safe: a read
// transaction whose snapshot predates the swap but that first names the table after it would
// read the new table through its old snapshot (rows of one generation, checkpoint of the other).
// So when the shadow has the live table's shape, its rows are copied into the live table (the
// same relation: an older snapshot keeps reading the old rows) and its indexes move with their
// generation's names; only a changed shape (new columns, types or constraints) takes the
// DROP and RENAME, which a view over the table then refuses.
void pg_swap_table(SqlSession& sql, const std::string& live, const std::string& shadow) {
  if (!sql.table_exists(live) || pg_table_shape(sql, live) != pg_table_shape(sql, shadow)) {
    sql.execute_script("DROP TABLE IF EXISTS " + quote(live));
    sql.execute_script("ALTER TABLE " + quote(shadow) + " RENAME TO " + quote(live));
    return;
  }
  const auto shadow_indexes = pg_plain_indexes(sql, shadow);
  for (const auto& [index, definition] : pg_plain_indexes(sql, live)) {
    (void)definition;
    sql.execute_script("DROP INDEX " + quote(index));
  }
  // DELETE, not TRUNCATE: TRUNCATE is not MVCC-safe either.
  sql.execute_script("DELETE FROM " + quote(live));
  sql.execute_script("INSERT INTO " + quote(live) + " SELECT * FROM " + quote(shadow));
  sql.execute_script("DROP TABLE " + quote(shadow));  // frees its index names
  for (const auto& [index, definition] : shadow_indexes) {
    const bool unique = definition.starts_with("UNIQUE ");
    sql.execute_script(std::string("CREATE ") + (unique ? "UNIQUE " : "") + "INDEX " +
                       quote(index) + " ON " + quote(live) + definition.substr(unique ? 7 : 0));
  }
}

RebuildProgress progress_at(std::uint64_t processed, std::uint64_t total,
                            std::chrono::steady_clock::time_point started) {
  RebuildProgress p;
  p.processed = processed;
  p.total = std::max(total, processed);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  p.events_per_second = seconds > 0 ? static_cast<double>(processed) / seconds : 0;
  if (p.events_per_second > 0) {
    const double eta = static_cast<double>(p.total - processed) / p.events_per_second;
    constexpr double kMax = 1e9;  // about 30 years: "unknown", without overflowing
    p.eta = std::chrono::seconds(static_cast<std::int64_t>(std::ceil(std::min(eta, kMax))));
  }
  return p;
}

void validate_tables(const std::string& name, const std::vector<ProjectionTable>& tables) {
  std::unordered_set<std::string> seen;
  for (const ProjectionTable& t : tables) {
    if (t.name.empty()) throw InvalidArgument("rebuild of " + name + ": a table has no name");
    if (!seen.insert(t.name).second) {
      throw InvalidArgument("rebuild of " + name + ": table " + t.name + " is named twice");
    }
  }
}

}  // namespace

RebuildReport rebuild(SqlEventStore& store, Projection& projection, const RebuildOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const std::string name = projection.name();
  if (options.batch_size == 0) throw InvalidArgument("rebuild of " + name + ": batch_size is 0");
  const std::vector<ProjectionTable> tables = projection.tables();
  validate_tables(name, tables);
  const std::string token = to_string(new_event_id());

  RebuildReport report;
  report.projection = name;
  std::uint64_t generation = 0;
  std::string suffix;          // empty until the shadow tables may exist
  std::uint64_t position = 0;  // of the shadow tables, as last committed
  auto report_progress = [&](std::uint64_t total) {
    if (options.on_progress) options.on_progress(progress_at(position, total, started));
  };

  try {
    store.write_transaction([&](SqlSession& sql) {
      ensure_checkpoint_table(sql);
      ensure_claims_table(sql);
      std::optional<ProjectionCheckpoint> cp = read_checkpoint(sql, name);
      // Live tables are made only for a projection that never ran. Existing ones (even of
      // another version, which this setup() may not fit) are left as they are, and a dropped one
      // is not re-created empty: a failed rebuild must not leave an empty table beside an old
      // checkpoint. The swap puts the shadow tables in their place.
      if (!cp) {
        ProjectionContext live(sql);
        projection.setup(live);
        cp = ProjectionCheckpoint{name, projection.version(), 0, 0, now()};
        write_checkpoint(sql, *cp);
      }
      generation = cp->generation + 1;
      suffix = "__g" + std::to_string(generation);
      drop_tables(sql, tables, suffix);  // left by a rebuild that crashed
      ProjectionContext shadow(sql, suffix);
      projection.setup(shadow);
      for (const ProjectionTable& t : tables) (void)shadow_columns_of(sql, t, t.name + suffix);
      const std::int64_t at = to_micros(now());
      sql.execute(
          "INSERT INTO annals_rebuilds (name, token, generation, position, started_at, updated_at)"
          " VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (name) DO UPDATE SET"
          " token = excluded.token, generation = excluded.generation, position = 0,"
          " started_at = excluded.started_at, updated_at = excluded.updated_at",
          {name, token, static_cast<std::int64_t>(generation), at});
    });

    // Replay in batches, each its own transaction, so appends and other writers interleave.
    // A short batch reached the head; what is appended after it is for the final transaction.
    for (;;) {
      std::size_t count = 0;
      std::uint64_t next = position, head = 0;
      store.write_transaction([&](SqlSession& sql) {
        require_claim(sql, name, token);
        count = replay_batch(sql, projection, suffix, next, options.batch_size);
        head = head_position(sql);
        sql.execute("UPDATE annals_rebuilds SET position = $1, updated_at = $2 WHERE name = $3",
                    {static_cast<std::int64_t>(next), to_micros(now()), name});
      });
      position = next;
      if (count > 0) report_progress(head);
      if (count < options.batch_size) break;
    }

    // Catch up, compare and swap in one transaction: appends wait, readers see before or after.
    bool swapped = false;
    store.write_transaction([&](SqlSession& sql) {
      require_claim(sql, name, token);
      const std::optional<ProjectionCheckpoint> cp = read_checkpoint(sql, name);
      if (!cp || cp->generation + 1 != generation) {
        throw ConcurrencyError("rebuild of " + name + ": generation " + std::to_string(generation) +
                               " was replaced meanwhile by another rebuild");
      }
      std::uint64_t at = position;
      while (replay_batch(sql, projection, suffix, at, options.batch_size) == options.batch_size) {
      }
      report.tables.clear();
      report.identical = true;
      if (options.compare) {
        for (const ProjectionTable& t : tables) {
          report.tables.push_back(
              compare_table(sql, t, t.name + suffix, options.max_reported_differences));
          report.identical = report.identical && report.tables.back().identical();
        }
      }
      swapped = report.identical || options.swap_when_different;
      if (swapped) {
        LegacyAlterTable legacy(sql);
        for (const ProjectionTable& t : tables) {
          if (sql.dialect() == "postgresql") {
            pg_swap_table(sql, t.name, t.name + suffix);
            continue;
          }
          sql.execute_script("DROP TABLE IF EXISTS " + quote(t.name));
          sql.execute_script("ALTER TABLE " + quote(t.name + suffix) + " RENAME TO " +
                             quote(t.name));
        }
        write_checkpoint(sql,
                         ProjectionCheckpoint{name, projection.version(), at, generation, now()});
      } else {
        drop_tables(sql, tables, suffix);
      }
      sql.execute("DELETE FROM annals_rebuilds WHERE name = $1", {name});
      report.position = at;
      report.generation = swapped ? generation : cp->generation;
    });
    position = report.position;
    report.swapped = swapped;
    report.events_processed = position;
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    if (!suffix.empty()) {
      // Best effort: if this fails too, the next rebuild drops the leftovers.
      try {
        store.write_transaction([&](SqlSession& sql) {
          if (claim_token(sql, name) != token) return;  // another rebuild's tables now
          drop_tables(sql, tables, suffix);
          sql.execute("DELETE FROM annals_rebuilds WHERE name = $1", {name});
        });
      } catch (...) {
      }
    }
    try {
      std::rethrow_exception(error);
    } catch (const StoreError& e) {
      // Say what failed: the store's message names only the transaction.
      throw StoreError("rebuild of " + name + ": " + e.what(), e.transient());
    }
  }

  if (report.swapped) projection.reset();
  report.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  // After the commit, like every report: the callback may read or append.
  report_progress(report.position);
  return report;
}

}  // namespace annals
