//! Kept subscriptions: what the application wants, what the broker's session has, and the
//! SUBSCRIBE / UNSUBSCRIBE requests in flight between them.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{Engine, Event, ReconnectPolicy};
use crate::packet::{PacketId, Properties, QoS, SubscribeReturnCode, SubscriptionOptions};
use crate::storage::{List, Storage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubState {
    /// Not (yet) known to the broker's session: send SUBSCRIBE when connected.
    Wanted,
    /// SUBSCRIBE sent with this packet id on the current connection.
    Requested(PacketId),
    /// Granted within the current session.
    Active,
}

#[derive(Debug)]
pub(super) struct Subscription {
    pub(super) filter: String,
    pub(super) qos: QoS,
    pub(super) state: SubState,
    /// MQTT 5 SUBSCRIBE properties as wire bytes (empty for none), sent with each SUBSCRIBE.
    pub(super) properties: Box<[u8]>,
}

#[derive(Debug)]
pub(super) enum RequestKind {
    Subscribe,
    Unsubscribe,
}

impl<P: ReconnectPolicy, E: Clone, S: Storage> Engine<P, E, S> {
    /// Sends SUBSCRIBE for wanted subscriptions (one per set of properties) and UNSUBSCRIBE
    /// for dropped ones, if connected.
    pub(super) fn send_subscriptions(&mut self) {
        if !self.is_connected() {
            return;
        }
        loop {
            let Some(properties) = self
                .subscriptions
                .iter()
                .find(|s| s.state == SubState::Wanted)
                .map(|s| s.properties.clone())
            else {
                break;
            };
            let is_wanted =
                |s: &Subscription| s.state == SubState::Wanted && s.properties == properties;
            let wanted: Vec<(&str, QoS)> = self
                .subscriptions
                .iter()
                .filter(|s| is_wanted(s))
                .map(|s| (s.filter.as_str(), s.qos))
                .collect();
            // (Only MQTT 5 subscriptions carry properties.)
            let sent = if !self.config.session.protocol.v5() || properties.is_empty() {
                self.session.subscribe(&wanted)
            } else {
                let options: Vec<(&str, SubscriptionOptions)> = wanted
                    .iter()
                    .map(|(filter, qos)| (*filter, SubscriptionOptions::new(*qos)))
                    .collect();
                self.session
                    .subscribe_with(&options, Properties::Encoded(&properties))
            };
            match sent {
                Ok(packet_id) => {
                    let filters: Vec<String> = wanted.iter().map(|(f, _)| f.to_string()).collect();
                    for subscription in self.subscriptions.iter_mut() {
                        if is_wanted(subscription) {
                            subscription.state = SubState::Requested(packet_id);
                        }
                    }
                    // (Room: as for UNSUBSCRIBE below.)
                    let _ = self
                        .requests
                        .push((packet_id, RequestKind::Subscribe, filters));
                }
                Err(_) => return, // no packet id free: retried at the next connection
            }
        }
        while let Some(properties) = self.unsubscribe_later.first().map(|(_, p)| p.clone()) {
            let filters: Vec<&str> = self
                .unsubscribe_later
                .iter()
                .filter(|(_, p)| *p == properties)
                .map(|(f, _)| f.as_str())
                .collect();
            let Ok(packet_id) = self
                .session
                .unsubscribe_with(&filters, Properties::Encoded(&properties))
            else {
                return; // no packet id free: retried at the next connection
            };
            // The sent filters move into the request, in order.
            let mut sent = Vec::with_capacity(filters.len());
            let mut index = 0;
            while index < self.unsubscribe_later.len() {
                if self.unsubscribe_later[index].1 == properties {
                    if let Some((filter, _)) = List::remove(&mut self.unsubscribe_later, index) {
                        sent.push(filter);
                    }
                } else {
                    index += 1;
                }
            }
            // (Room: the session holds no more requests than its storage's lists do.)
            let _ = self
                .requests
                .push((packet_id, RequestKind::Unsubscribe, sent));
        }
    }

    pub(super) fn subscribed(
        &mut self,
        packet_id: PacketId,
        codes: impl Iterator<Item = SubscribeReturnCode>,
    ) {
        let Some(index) = self
            .requests
            .iter()
            .position(|r| r.0 == packet_id && matches!(r.1, RequestKind::Subscribe))
        else {
            return;
        };
        let Some((_, _, filters)) = self.requests.swap_remove(index) else {
            return;
        };
        for (filter, code) in filters.into_iter().zip(codes) {
            let current = self
                .subscriptions
                .iter()
                .position(|s| s.filter == filter && s.state == SubState::Requested(packet_id));
            match code {
                SubscribeReturnCode::Success(granted) => {
                    if let Some(index) = current {
                        self.subscriptions[index].state = SubState::Active;
                    }
                    self.push_event(Event::Subscribed { filter, granted });
                }
                SubscribeReturnCode::Failure => {
                    if let Some(index) = current {
                        List::remove(&mut self.subscriptions, index);
                    }
                    self.push_event(Event::SubscriptionRefused { filter });
                }
            }
        }
    }
}
