"""HTTP handlers, one per route of :mod:`chunksync.wire`; :func:`add_routes` wires them."""

from __future__ import annotations

from aiohttp import web

from chunksync import wire

from . import account, devices, folders, lifecycle, objects, reauth
from .common import ApiError

__all__ = ["ApiError", "add_routes"]


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(wire.LOGIN, account.login)
    r.add_post(wire.LOGOUT, account.logout)
    r.add_post(wire.TOKEN_ROTATE, account.rotate)
    r.add_get(wire.WHOAMI, account.whoami)
    r.add_post(wire.TOTP_ENROLL, account.totp_enroll)
    r.add_delete(wire.TOTP_ENROLL, account.totp_disable)
    r.add_get(wire.DEVICES, devices.list_devices)
    r.add_delete(wire.DEVICE, devices.revoke_device)
    r.add_get(wire.FOLDERS, folders.list_folders)
    r.add_post(wire.FOLDERS, folders.create_folder)
    r.add_get(wire.FOLDER, folders.get_folder)
    r.add_get(wire.KEYSLOTS, folders.get_keyslots)
    r.add_put(wire.KEYSLOT, folders.put_keyslot)
    # fixed paths before the {oid} pattern so "missing"/"fetch" never parse as ids
    r.add_post(wire.MISSING, objects.missing)
    r.add_post(wire.OBJECTS_FETCH, objects.fetch_batch)
    r.add_post(wire.OBJECTS, objects.upload_batch)
    r.add_put(wire.OBJECT, objects.put_object)
    r.add_get(wire.OBJECT, objects.get_object)
    r.add_get(wire.HEAD, folders.get_head)
    r.add_put(wire.HEAD, folders.put_head)
    r.add_get(wire.HEAD_LOG, folders.get_log)
    r.add_get(wire.EVENTS, folders.events)
    r.add_post(wire.REAUTH, reauth.reauth)
    r.add_get(wire.LIFECYCLE, lifecycle.get_lifecycle)
    r.add_put(wire.RETENTION, lifecycle.put_policy)
    r.add_post(wire.FORGET_POLICY, lifecycle.forget_policy)
    r.add_post(wire.FORGET, lifecycle.forget)
    r.add_post(wire.PRUNE, lifecycle.prune_start)
    r.add_post(wire.PRUNE_LIVE, lifecycle.prune_live)
    r.add_post(wire.PRUNE_SWEEP, lifecycle.prune_sweep)
