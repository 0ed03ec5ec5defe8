"""The MongoDB mirror, in storybench's own document shape (PyMongo async; motor accepted).

``mirror`` reads and writes; ``codec`` decides what a document holds and whether it is served;
``activation`` keeps storybench's active set; ``indexes`` builds them; ``errors`` maps the
driver's errors.

One collection per content kind (``prompts`` for prompt sets, ``evaluation_criteria`` for
evaluation sets) in database ``storybench``. storybench's reader
(``find_one({"is_active": True})``) keeps working unchanged.

**Content addressing.** As storybench's own ``sync-prompts`` does, the collection holds one
document per ``config_hash``, several per version when a version was edited, and keeps the old
ones: an evaluation records the ``config_hash`` it ran, so an old document is the record of
what a past run used. Our documents use the hash as ``_id``, so two processes saving the same
content at once end with one document (the loser of the insert updates the winner's
metadata). A save never changes the content of a document, never deletes one, and never
touches a document's ``created_at``; the one exception is a document of ours edited by hand,
whose content is put back to what its ``_id`` names. Our document::

    {_id: config_hash, config_hash, version, <content>, created_at, is_active,  # storybench's
     version_name, directus_id, content_hash, source_created_at, source_updated_at,
     fetched_at, synced_at, sync_order, activation_seq, withdrawn_at,
     schema_version}                                                         # ours

where ``<content>`` is the kind's body (``sequences``; or ``criteria`` and
``scoring_guidelines``). Source dates are stored as ISO strings so they read back exactly.

**storybench's own documents** (``ObjectId`` ``_id``; only ``config_hash``, ``version``, the
content, ``created_at`` and ``is_active``) are kept. storybench's hash covers the Directus id,
which it does not store, so such a document cannot be verified and is *never served*; it
stays in place as a record. Saving content whose hash matches one of them upgrades that
document in place: our metadata fields are ``$set`` (``directus_id`` among them, which makes it
verifiable); its content, ``created_at`` and ``is_active`` are left alone.

**Reading.** Every served document is decoded with the kind's content rules and its stored
``config_hash`` (and ``content_hash``) checked against its content; one that fails is a
:class:`MirrorCorruptError` and is never served. Per version, reads serve the servable copy
synced last (``sync_order`` descending). :meth:`get_by_hash` serves exactly the content saved
under a hash, withdrawn or not.

**Withdrawal.** :meth:`withdraw` stamps every copy of a version with ``withdrawn_at`` (nothing
is deleted); ``get``, ``latest``, ``versions`` and ``stored_hash`` never serve it. A later save
of that version's content fresh from Directus (it is published again) clears the stamp on the
copy it saved; a save of content that did not come from Directus keeps the version withdrawn.

**Which set is active.** As with storybench's ``sync-prompts``, storybench's reader finds the
version last *activated*: :meth:`activate` (what ``sync`` does) stamps the version's current
copy with the next number of a counter (``activation_seq``, in ``storybench_prompts_meta``).
:meth:`save` never changes which version is active and never activates one when none is:
``activate(v, only_if_none=True)`` (what ``warm`` does) activates ``v`` only when no document
is active. Activation belongs to a version: when a newer copy of the active version is saved,
the flag moves to that copy (it inherits the ``activation_seq``), so storybench runs the
content Directus publishes now. When the active version is withdrawn, the highest version
still served becomes active; when there is none, the withdrawn one stays active (never zero).

**Activation invariant.** *Once any document is active, at least one is active at every
instant*, and at rest exactly one is: the current copy of the version with the highest
``activation_seq``. Every write ends with :meth:`reconcile`, which (1) activates that copy, then
(2) deactivates only documents ranked *lower* (by ``activation_seq``, then ``sync_order``, neither
of which ever decreases), then re-reads the top and repeats if it changed. Activation precedes
deactivation and nobody deactivates the top they saw, so a reader between any two writes finds
one or two active documents, never zero; a sync killed between its writes leaves the previous
document active and the next write finishes the job; racing syncs converge on the most recent
activation. A database written by storybench alone may hold several active documents and no
``activation_seq``: the reconcile keeps the one storybench's reader finds now, stamping it with
``activation_seq: 0.5`` before deactivating the rest (below every number the counter hands
out, so a real activation always outranks it, even one claimed a moment earlier and not yet
stamped; ties among such documents go to the higher ``_id``). An activation made afterwards by
storybench's own ``sync-prompts`` is not seen as one (it writes no ``activation_seq``); use
``sync`` instead.

**Existing databases need no migration.** Only non-unique indexes are built; an index whose key
already exists is left as it is; the unique ``version`` index of our 0.1 schema (one document
per version) is dropped, found by its key because some servers do not keep index names. Our
0.1 documents (``ObjectId`` ``_id``, with our metadata) are served like ours.
"""

from .errors import map_pymongo_errors
from .mirror import MongoMirror

__all__ = ["MongoMirror", "map_pymongo_errors"]
