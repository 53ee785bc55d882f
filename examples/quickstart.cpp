#include <crdtsync/crdtsync.hpp>
#include <crdtsync/backends/memory.hpp>

#include <iostream>

struct task {
    BOOST_HANA_DEFINE_STRUCT(task, (std::int64_t, id), (std::string, title), (bool, done));
};

void print(const char* who, const std::vector<task>& tasks) {
    for (const auto& t : tasks)
        std::cout << who << ": " << t.id << " \"" << t.title << "\" " << (t.done ? "done" : "open") << "\n";
}

int main() {
    // Two replicas, each over its own store (or lmdb_store{"./alice.db"}, or your own).
    crdtsync::memory_store alice_store, bob_store;
    crdtsync::replica alice{alice_store};
    crdtsync::replica bob{bob_store};
    auto alice_tasks = alice.table<task>("tasks", crdtsync::key(&task::id));
    auto bob_tasks = bob.table<task>("tasks", crdtsync::key(&task::id));

    alice.write([&](auto& tx) { alice_tasks.insert(tx, {1, "buy milk", false}); });
    auto first = alice.changes_since(bob.site_id(), 0); // everything bob lacks
    (void)bob.apply(first.change_sets);

    // Offline: both edit task 1. Different columns both survive; for the
    // same column the later write (by hybrid logical clock) wins.
    alice.write([&](auto& tx) { alice_tasks.update(tx, {1, "buy oat milk", false}); });
    bob.write([&](auto& tx) { bob_tasks.update(tx, {1, "buy soy milk", true}); });

    auto report = [](const crdtsync::conflict& c) {
        std::cout << "conflict on " << c.table << "." << c.column << ": kept "
                  << (c.winner == crdtsync::conflict_winner::local ? c.local_value : c.remote_value).to_text()
                  << ", dropped "
                  << (c.winner == crdtsync::conflict_winner::local ? c.remote_value : c.local_value).to_text() << "\n";
    };
    alice.on_conflict(report);
    bob.on_conflict(report);
    // A change set a replica cannot take (a peer's clock far ahead, a table
    // created elsewhere with another primary key) is rejected whole, and its
    // sender offers it again: watch for it. (Change sets for a table not
    // known yet are held until it arrives: on_hold, docs/schema.md.)
    auto rejected = [](const crdtsync::rejection& r) {
        std::cerr << "rejected " << r.transaction_id << ": " << r.reason << "\n";
    };
    alice.on_rejected(rejected);
    bob.on_rejected(rejected);

    // Exchange: each side asks the other for what it lacks.
    auto to_bob = alice.changes_since(bob.site_id(), first.next_position);
    auto to_alice = bob.changes_since(alice.site_id(), 0);
    auto at_bob = bob.apply(to_bob.change_sets);
    auto at_alice = alice.apply(to_alice.change_sets);
    std::cout << "bob applied " << at_bob.applied << ", skipped " << at_bob.skipped << ", conflicts " << at_bob.conflicts << "\n";
    std::cout << "alice applied " << at_alice.applied << ", skipped " << at_alice.skipped << ", conflicts " << at_alice.conflicts << "\n";

    print("alice", alice_tasks.all());
    print("bob  ", bob_tasks.all());
    const bool converged = alice.dump() == bob.dump();
    std::cout << (converged ? "converged" : "DIVERGED") << "\n";
    return converged ? 0 : 1;
}
