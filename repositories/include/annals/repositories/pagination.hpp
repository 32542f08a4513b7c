#pragma once

// One page of an infinite-scroll list: the rows, the page size asked for, and whether a next
// page exists. Continue with the id of the last row of `data` as the next call's last_id.
//
//   auto page = runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20);
//   while (page.has_more) {
//     page = runs.get_paginated_workflow_runs("t-1", "app-1", "debugging", 20,
//                                             page.data.back().id);
//   }
//
// A plain value; safe to use from any thread as long as one object is not mutated concurrently.

#include <cstddef>
#include <vector>

namespace annals {

template <class T>
struct InfiniteScrollPagination {
  std::vector<T> data{};  // at most `limit` rows, in the list's order
  std::size_t limit = 0;  // the page size that was asked for
  bool has_more = false;  // true if at least one more row follows the last one in `data`

  friend bool operator==(const InfiniteScrollPagination&,
                         const InfiniteScrollPagination&) = default;
};

}  // namespace annals
