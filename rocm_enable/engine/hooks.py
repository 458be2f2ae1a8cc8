"""pluggy hooks through which stack adapters contribute fix records.

The vLLM and ATOM stacks ship built in (registered under the same names as their entry points,
so pluggy skips the entry points instead of registering them twice, and an install whose
entry-point metadata predates a stack still gets it); a third-party adapter registers a module
with a `rocm_enable_stack` hookimpl under the entry-point group `rocm_enable.stacks`."""
from __future__ import annotations

import functools

import pluggy

from rocm_enable.engine.record import Stack

PROJECT = "rocm_enable"
ENTRY_POINT_GROUP = "rocm_enable.stacks"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class StackSpec:
    @hookspec
    def rocm_enable_stack(self) -> Stack:
        """Return the stack this plugin adapts and its fix records."""


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    from rocm_enable.stacks import atom as atom_stack
    from rocm_enable.stacks import vllm as vllm_stack

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(StackSpec)
    # pluggy calls hookimpls last-registered first: registering ATOM first keeps vLLM's fixes
    # first in doctor's table and in apply order.
    pm.register(atom_stack, name="atom")
    pm.register(vllm_stack, name="vllm")
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)  # skips names already registered
    return pm


def stacks() -> list[Stack]:
    return list(plugin_manager().hook.rocm_enable_stack())


def all_fixes() -> list:
    return [fix for stack in stacks() for fix in stack.fixes]
